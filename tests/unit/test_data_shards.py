"""Sharded HDF5 writing, reading, verification and the manifest statistics, on real files in tmp_path."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from scaling.data.schema import MANIFEST_NAME, SCHEMA_VERSION, STATS_KEYS, Event, TrackTable
from scaling.data.shards import ShardError, ShardReader, read_manifest, write_dataset, write_shard


def random_event(rng: np.random.Generator, *, tracks: bool = True) -> Event:
    """A TPC-like event: points on cylinders 30..78 cm, |z| < 100 cm, a few tracks."""
    n = int(rng.integers(0, 60))
    n_tracks = int(rng.integers(1, 6))
    r = rng.uniform(30.5, 77.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    points = np.stack(
        [rng.gamma(2.0, 100.0, n), r * np.cos(phi), r * np.sin(phi), rng.uniform(-100, 100, n)], axis=1
    ).astype(np.float32)
    table = None
    if tracks:
        table = TrackTable(
            momentum=rng.normal(size=(n_tracks, 3)).astype(np.float32),
            vertex=rng.normal(size=(n_tracks, 3)).astype(np.float32),
            pdg=rng.choice([211, -211, 321, 2212, 11], n_tracks).astype(np.int32),
            charge=rng.choice([-1, 1], n_tracks).astype(np.int8),
        )
    return Event(
        points=points,
        track_id=rng.integers(-1, n_tracks, n),
        pid=rng.integers(0, 5, n).astype(np.int8),
        noise=rng.integers(0, 2, n).astype(np.uint8),
        tracks=table,
    )


def random_events(n: int, seed: int = 0, *, tracks: bool = True) -> list[Event]:
    rng = np.random.default_rng(seed)
    return [random_event(rng, tracks=tracks) for _ in range(n)]


def assert_same(a: Event, b: Event) -> None:
    for name in ("points", "track_id", "pid", "noise"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype or name == "track_id"
    assert (a.tracks is None) == (b.tracks is None)
    if a.tracks is not None and b.tracks is not None:
        for name in ("momentum", "vertex", "pdg", "charge"):
            np.testing.assert_array_equal(getattr(a.tracks, name), getattr(b.tracks, name))


def test_roundtrip_and_manifest(tmp_path: Path) -> None:
    events = {"train": random_events(23, 1), "val": random_events(5, 2, tracks=False)}
    manifest = write_dataset(tmp_path, events, shard_events=10, provenance={"source": "test"})
    assert [s["file"] for s in manifest["splits"]["train"]["shards"]] == [
        "train/shard-00000.h5", "train/shard-00001.h5", "train/shard-00002.h5"]  # fmt: skip
    assert manifest["splits"]["train"]["n_events"] == 23
    assert manifest["splits"]["train"]["n_points"] == sum(e.n_points for e in events["train"])
    assert read_manifest(tmp_path) == json.loads((tmp_path / MANIFEST_NAME).read_text())
    got = []
    for shard in manifest["splits"]["train"]["shards"]:
        reader = ShardReader(tmp_path / shard["file"], sha256=shard["sha256"])
        assert reader.verify()["n_events"] == shard["n_events"] == len(reader)
        got += reader.read_events(0, len(reader))
    for a, b in zip(events["train"], got, strict=True):
        assert_same(a, b)
    val = ShardReader(tmp_path / "val/shard-00000.h5")
    assert_same(events["val"][3], val.read_event(3))
    assert val.read_event(3).event_id == 3
    with h5py.File(tmp_path / "train/shard-00000.h5") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["points"].compression is not None and f["points"].chunks is not None
    assert not list(tmp_path.rglob("*.tmp"))


def test_stats_match_direct_computation(tmp_path: Path) -> None:
    events = random_events(40, 3)
    stats = write_dataset(tmp_path, {"train": events}, shard_events=16, provenance={})["stats"]
    assert set(stats) == set(STATS_KEYS)
    pts = np.concatenate([e.points for e in events]).astype(np.float64)
    assert stats["energy_mean"] == pytest.approx(pts[:, 0].mean(), rel=1e-9)
    assert stats["energy_std"] == pytest.approx(pts[:, 0].std(), rel=1e-6)
    r = np.hypot(pts[:, 1], pts[:, 2])
    eta = np.arcsinh(pts[:, 3] / r)
    assert stats["r_min"] == pytest.approx(r.min()) and stats["z_max"] == pytest.approx(pts[:, 3].max())
    assert stats["eta_min"] == pytest.approx(eta.min()) and stats["eta_max"] == pytest.approx(eta.max())
    assert len(stats["r_edges"]) == 7 and stats["r_edges"][2] == pytest.approx(40.5)
    for key, values in (("eta_edges", eta), ("phi_edges", np.arctan2(pts[:, 2], pts[:, 1]))):
        edges = np.asarray(stats[key])
        assert edges.size == 9 and (np.diff(edges) > 0).all()
        share = np.histogram(values, edges)[0] / values.size
        assert np.abs(share - 1 / 8).max() < 0.03, share  # frequency balanced
    counts = [e.n_points for e in events]
    assert stats["points_per_event"]["max"] == max(counts)
    assert stats["points_per_event"]["median"] == pytest.approx(float(np.median(counts)))
    assert stats["phi_min"] == pytest.approx(-math.pi)


def test_checksum_mismatch_names_file(tmp_path: Path) -> None:
    shard = write_dataset(tmp_path, {"train": random_events(4)}, shard_events=4, provenance={})
    entry = shard["splits"]["train"]["shards"][0]
    path = tmp_path / entry["file"]
    with h5py.File(path, "a") as f:
        f.attrs["extra"] = 1
    with pytest.raises(ShardError, match=r"shard-00000\.h5: sha256 .* differs"):
        ShardReader(path, sha256=entry["sha256"]).verify()


def test_truncated_shard_is_one_clear_error(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": random_events(30)}, shard_events=30, provenance={})
    path = tmp_path / "train/shard-00000.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=r"shard-00000\.h5: .*(truncated or corrupt|corrupt)"):
        ShardReader(path).read_events(0, 30)


def _rewrite(path: Path, name: str, data: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        del f[name]
        f.create_dataset(name, data=data)


def test_bad_offsets_nan_and_schema_version(tmp_path: Path) -> None:
    events = random_events(6, 5)
    path = tmp_path / "s.h5"
    write_shard(path, events)
    with h5py.File(path) as f:
        offsets, points = f["point_offsets"][...], f["points"][...]
    bad = offsets.copy()
    bad[3], bad[2] = bad[2] - 1, bad[3] + 1  # not monotone
    _rewrite(path, "point_offsets", bad)
    with pytest.raises(ShardError, match=r"s\.h5: event \d+: point_offsets inconsistent"):
        len(ShardReader(path))
    _rewrite(path, "point_offsets", offsets)
    row = int(offsets[4])
    points[row, 2] = np.nan
    _rewrite(path, "points", points)
    reader = ShardReader(path)
    assert_same(events[1], reader.read_event(1))
    with pytest.raises(ShardError, match=r"s\.h5: event 4: NaN/inf coordinate at spacepoint 0"):
        reader.read_event(4)
    with pytest.raises(ShardError, match="event 4"):
        reader.verify()
    reader.close()
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ShardError, match="schema_version"):
        ShardReader(path).read_event(0)


def test_writer_refuses_nan_and_leaves_nothing(tmp_path: Path) -> None:
    events = random_events(5, 7)
    events[2].points[0, 1] = np.inf
    with pytest.raises(ValueError, match=r"shard-00001\.h5: event 0 \(split 'train' event 2\): non-finite"):
        write_dataset(tmp_path, {"train": events}, shard_events=2, provenance={})
    assert not (tmp_path / MANIFEST_NAME).exists()
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.h5"))


def test_interrupted_rewrite_leaves_no_manifest(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": random_events(4)}, shard_events=2, provenance={})

    def dying():
        yield from random_events(3, 9)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path, {"train": dying()}, shard_events=2, provenance={})
    with pytest.raises(ValueError, match="no manifest"):
        read_manifest(tmp_path)
    assert not (tmp_path / "train/shard-00000.h5").exists()  # the failed write removed what it wrote
    manifest = write_dataset(tmp_path, {"train": random_events(3)}, shard_events=2, provenance={})
    assert len(manifest["splits"]["train"]["shards"]) == 2


def test_manifest_schema_version_checked(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": random_events(2)}, shard_events=2, provenance={})
    doc = json.loads((tmp_path / MANIFEST_NAME).read_text())
    doc["schema_version"] = 99
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"manifest\.json: schema_version 99"):
        read_manifest(tmp_path)
    os.remove(tmp_path / "train/shard-00000.h5")
    with pytest.raises(ShardError, match="missing"):
        ShardReader(tmp_path / "train/shard-00000.h5").read_event(0)


def test_batched_groups_lazily_with_a_short_last_batch() -> None:
    from scaling.iterables import batched

    read: list[int] = []

    def events():
        for i in range(5):
            read.append(i)
            yield i

    batches = batched(events(), 2)
    assert next(batches) == [0, 1] and read == [0, 1]  # one batch at a time: a generator is not drained
    assert list(batches) == [[2, 3], [4]]
    assert list(batched([], 3)) == []
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        next(batched([1], 0))
