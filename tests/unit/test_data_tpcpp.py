"""TPCpp-10M layout: export then import end to end, sharded train files, unlabelled files, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaling.data.loader import EventStream
from scaling.data.schema import Event
from scaling.data.shards import read_manifest
from scaling.data.tpcpp import discover, export_tpcpp, import_tpcpp


def events(n: int, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 40))
        r, phi = rng.uniform(31, 77, k), rng.uniform(-np.pi, np.pi, k)
        points = np.column_stack(
            [rng.gamma(2, 100, k), r * np.cos(phi), r * np.sin(phi), rng.normal(0, 40, k)]
        )
        out.append(
            Event(
                points=points.astype(np.float32),
                track_id=rng.integers(-1, 5, k),
                pid=rng.integers(0, 5, k).astype(np.int8),
                noise=rng.integers(0, 2, k).astype(np.uint8),
            )
        )
    return out


@pytest.fixture()
def source(tmp_path: Path) -> tuple[Path, dict[str, list[Event]]]:
    splits = {"train": events(25, 1), "val": events(6, 2), "test": events(4, 3), "pretrain": events(9, 4)}
    export_tpcpp(tmp_path / "src", splits, file_events=10)
    return tmp_path / "src", splits


def test_layout_written_as_published(source: tuple[Path, dict[str, list[Event]]]) -> None:
    src, splits = source
    train = src / "labeled/train"
    assert sorted(p.name for p in train.glob("spacepoints*.npz")) == [
        "spacepoints_000.npz", "spacepoints_001.npz", "spacepoints_002.npz"]  # fmt: skip
    assert (src / "labeled/validation/spacepoints.npz").is_file()
    assert (src / "labeled/validation/noise_tags.npz").is_file()
    with np.load(train / "spacepoints_002.npz") as npz:
        assert npz["data"].dtype == np.float32 and npz["data"].shape[1] == 4
        assert npz["size"].tolist() == [e.n_points for e in splits["train"][20:]]
    with np.load(train / "pid_labels_001.npz") as npz:
        np.testing.assert_array_equal(npz["data"], np.concatenate([e.pid for e in splits["train"][10:20]]))
    assert set(discover(src)) == {"train", "val", "test", "pretrain"}


def test_import_roundtrip(source: tuple[Path, dict[str, list[Event]]], tmp_path: Path) -> None:
    src, splits = source
    manifest = import_tpcpp(src, tmp_path / "ds", shard_events=8)
    assert manifest == read_manifest(tmp_path / "ds")
    assert manifest["provenance"]["labelled"]["pretrain"] is False
    for split, original in splits.items():
        assert manifest["splits"][split]["n_events"] == len(original)
        got = list(EventStream(tmp_path / "ds", split, shuffle=False))
        for a, b in zip(original, got, strict=True):
            np.testing.assert_array_equal(a.points, b.points)
            if split == "pretrain":
                assert (b.track_id == -1).all() and (b.pid == 0).all()
            else:
                np.testing.assert_array_equal(a.track_id, b.track_id)
                np.testing.assert_array_equal(a.pid, b.pid)
                np.testing.assert_array_equal(a.noise, b.noise)
    pts = np.concatenate([e.points for e in splits["train"]]).astype(np.float64)
    assert manifest["stats"]["energy_mean"] == pytest.approx(pts[:, 0].mean(), rel=1e-9)


def test_missing_file_or_key_writes_nothing(
    source: tuple[Path, dict[str, list[Event]]], tmp_path: Path
) -> None:
    src, _ = source
    (src / "labeled/test/noise_tags.npz").unlink()
    with pytest.raises(ValueError, match=r"labeled/test/noise_tags\.npz: missing TPCpp-10M file"):
        import_tpcpp(src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    np.savez(src / "labeled/test/noise_tags.npz", values=np.zeros(3))
    with pytest.raises(ValueError, match=r"noise_tags\.npz: no key 'data' \(has values\)"):
        import_tpcpp(src, tmp_path / "ds")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no labeled/"):
        import_tpcpp(tmp_path / "empty", tmp_path / "x")
    # a text file under an .npz name (an HTML error page saved by a download): one line, not numpy's
    # "pickled (object) data" message
    (src / "labeled/test/noise_tags.npz").write_text("<html>503 Service Unavailable</html>\n")
    bad = r"noise_tags\.npz: not an \.npz file \(a file starting b'<htm'"
    with pytest.raises(ValueError, match=bad) as err:
        import_tpcpp(src, tmp_path / "ds")
    assert "pickle" not in str(err.value) and str(err.value).endswith("re-download it")


def test_inconsistent_sizes_and_nan(source: tuple[Path, dict[str, list[Event]]], tmp_path: Path) -> None:
    src, splits = source
    path = src / "labeled/validation/spacepoints.npz"
    with np.load(path) as npz:
        data, size = npz["data"].copy(), npz["size"].copy()
    np.savez(path, data=data, size=size + 1)
    with pytest.raises(ValueError, match=r"validation/spacepoints\.npz: `data` .* disagree"):
        import_tpcpp(src, tmp_path / "ds")
    data[int(size[0]) + 1, 2] = np.nan  # event 1
    np.savez(path, data=data, size=size)
    with pytest.raises(ValueError, match=r"validation/spacepoints\.npz: event 1: non-finite"):
        import_tpcpp(src, tmp_path / "ds")
    assert not (tmp_path / "ds/manifest.json").exists() and not list(tmp_path.glob("ds/*/*.h5"))
    manifest = import_tpcpp(src, tmp_path / "ds", skip_bad_events=True)
    assert manifest["provenance"]["skipped_events"] == 1
    assert manifest["splits"]["val"]["n_events"] == len(splits["val"]) - 1
