"""`python -m scaling.data`: inspect, import-tpcpp, simulate, and their one-line errors with exit code 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from scaling.atomic import write_json_atomic
from scaling.data.__main__ import main
from scaling.data.cli import parse_splits
from scaling.data.loader import EventStream
from scaling.data.schema import Event
from scaling.data.shards import read_manifest, sha256_file, write_dataset
from scaling.data.tpcpp import export_tpcpp

REPO = Path(__file__).resolve().parents[2]


def events(n: int, seed: int = 0) -> list[Event]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 3 + i % 4  # 3..6 points, tracks 0..2 -> known figures
        points = np.column_stack([rng.uniform(1, 9, k), rng.uniform(31, 70, (k, 2)), rng.normal(0, 9, k)])
        out.append(
            Event(
                points=points.astype(np.float32),
                track_id=np.arange(k) % 3 - (i % 2),  # odd events: one track fewer (-1 = no track)
                pid=np.full(k, i % 5, np.int8),
                noise=(np.arange(k) == 0).astype(np.uint8),
            )
        )
    return out


def test_parse_splits_sums_exactly() -> None:
    assert parse_splits("train=0.9,val=0.05,test=0.05", 101) == {"train": 91, "val": 5, "test": 5}
    assert sum(parse_splits("pretrain=1,train=1,test=1", 10).values()) == 10
    with pytest.raises(ValueError, match="--splits: bad item 'val'"):
        parse_splits("train=0.9,val", 10)


def test_inspect_reports_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evs = events(20)
    write_dataset(tmp_path, {"train": evs[:16], "val": evs[16:]}, shard_events=5, provenance={})
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    total = sum(e.n_points for e in evs[:16])
    assert f"[train] events 16, spacepoints {total}" in out
    assert table_row(out, "spacepoints per event") == [*"3 3 3 4.5 6 6 6".split(), PAPER_POINTS, "no"]
    assert table_row(out, "truth tracks per event") == [*"2 2 2 2.5 3 3 3".split(), PAPER_TRACKS, "no"]
    per_track = [np.bincount(e.track_id[e.track_id >= 0]) for e in evs[:16]]
    hits = np.concatenate([h[h > 0] for h in per_track])
    row = table_row(out, "points per truth track")
    assert row[0] == str(hits.min()) and row[6] == str(hits.max()) and row[-2:] == ["not stated", "-"]
    noise = 16 / total
    assert f"noise fraction: {noise:.3f}" in out
    assert "[val] events 4" in out


PAPER_POINTS, PAPER_TRACKS = "a few hundred to tens of thousands", "under 10 to nearly 100"


def table_row(out: str, name: str) -> list[str]:
    """The cells after `name` in the first table row that starts with it (columns are 2+ spaces apart)."""
    line = next(line for line in out.splitlines() if line.strip().startswith(name))
    return re.split(r"\s{2,}", line.strip())[1:]


def sized_event(n_points: int, n_tracks: int, rng: np.random.Generator) -> Event:
    points = np.column_stack([rng.uniform(1, 9, n_points), rng.uniform(31, 70, (n_points, 2)),
                              rng.normal(0, 9, n_points)])  # fmt: skip
    return Event(points=points.astype(np.float32), track_id=np.arange(n_points) % n_tracks,
                 pid=np.ones(n_points, np.int8), noise=np.zeros(n_points, np.uint8))  # fmt: skip


def test_inspect_one_split_beside_the_papers_ranges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    busy = [sized_event(n, t, rng) for n, t in ((300, 5), (12_000, 90), (2000, 40))]
    write_dataset(tmp_path, {"train": busy, "val": events(4)}, shard_events=2, provenance={})
    assert main(["inspect", str(tmp_path), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "[val]" not in out and "[train] events 3, spacepoints 14300" in out
    points, tracks = table_row(out, "spacepoints per event"), table_row(out, "truth tracks per event")
    assert points[0] == "300" and points[3] == "2000" and points[6] == "12000" and points[-1] == "yes"
    assert tracks[0] == "5" and tracks[6] == "90" and tracks[-1] == "yes"
    assert main(["inspect", str(tmp_path), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no split 'test' (it has: train, val); pick one with --split" in err
    assert main(["inspect", str(tmp_path / "missing"), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing/manifest.json: no manifest" in err


def test_inspect_fails_on_corruption(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dataset(tmp_path, {"train": events(10)}, shard_events=5, provenance={})
    path = tmp_path / "train/shard-00001.h5"
    with h5py.File(path, "a") as f:
        points = f["points"][...]
        points[-1, 3] = np.inf
        del f["points"]
        f.create_dataset("points", data=points)
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shard-00001.h5: sha256 differs" in err
    manifest = read_manifest(tmp_path)
    manifest["splits"]["train"]["shards"][1]["sha256"] = sha256_file(path)
    write_json_atomic(tmp_path / "manifest.json", manifest)
    assert main(["inspect", str(tmp_path)]) == 2
    assert "shard-00001.h5: event 4: NaN/inf coordinate" in capsys.readouterr().err
    manifest["splits"]["train"]["shards"].pop(1)
    write_json_atomic(tmp_path / "manifest.json", manifest)
    assert main(["inspect", str(tmp_path)]) == 2
    assert "split 'train' lists n_events 10 but its shards hold 5" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "nowhere")]) == 2
    assert "no manifest" in capsys.readouterr().err


def test_import_tpcpp_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evs = events(12, 3)
    export_tpcpp(tmp_path / "src", {"train": evs[:8], "val": evs[8:]}, file_events=3)
    assert main(["import-tpcpp", str(tmp_path / "src"), "--out", str(tmp_path / "ds")]) == 0
    assert "[train] events 8" in capsys.readouterr().out
    assert read_manifest(tmp_path / "ds")["splits"]["val"]["n_events"] == 4
    assert main(["import-tpcpp", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_module_entry_point_errors_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scaling.data", "inspect", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_simulate_both_formats_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("scaling.data.simulator", reason="the detector simulator has not landed yet")
    common = ["--events", "20", "--seed", "4", "--shard-events", "5", "--profile", "small"]
    assert main(["simulate", "--out", str(tmp_path / "h5"), *common]) == 0
    manifest = read_manifest(tmp_path / "h5")
    assert {k: v["n_events"] for k, v in manifest["splits"].items()} == {"train": 18, "val": 1, "test": 1}
    assert manifest["provenance"]["seed"] == 4 and manifest["provenance"]["profile"] == "small"
    assert "[train] events 18" in capsys.readouterr().out
    assert main(["simulate", "--out", str(tmp_path / "np"), "--format", "tpcpp", *common]) == 0
    assert (tmp_path / "np/labeled/train/spacepoints_003.npz").is_file()
    assert main(["import-tpcpp", str(tmp_path / "np"), "--out", str(tmp_path / "imp")]) == 0
    capsys.readouterr()
    for split in ("train", "val", "test"):  # same seed, same events through either path
        direct = list(EventStream(tmp_path / "h5", split, shuffle=False))
        imported = list(EventStream(tmp_path / "imp", split, shuffle=False))
        for a, b in zip(direct, imported, strict=True):
            np.testing.assert_array_equal(a.points, b.points)
            np.testing.assert_array_equal(a.pid, b.pid)
            np.testing.assert_array_equal(a.track_id, b.track_id)
