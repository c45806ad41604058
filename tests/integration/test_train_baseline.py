"""A run with the sharper k-NNN target through `python -m scaling.train`: baselines and ratios written where
the launcher and the analysis read them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tiny_train import train_tiny

from analysis.runs import read_run
from launch import ledger
from scaling.train.ratios import run_ratios

pytestmark = pytest.mark.integration


def train(run_dir: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    return train_tiny(run_dir, data, *overrides, difficulty_events=16)


def test_sharp_target_run_logs_ratios_and_stores_its_statistics(tmp_path: Path) -> None:
    run = tmp_path / "sweep" / "sharp"
    out = train(run, tmp_path / "data", "objective.metric=physical", "objective.target_scaling=robust",
                "objective.loss=huber", "data.energy_feature=log")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    stats = json.loads((run / "target_stats.json").read_text())
    assert stats["kind"] == "robust" and len(stats["mean"]) == 4  # k = 4 slots
    baseline = json.loads((run / "baseline.json").read_text())
    assert set(baseline) == {"layer", "layer_eta"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["kind"] == "val"]
    assert [r["step"] for r in val] == [5, 10]
    for r in val:
        assert r["val_loss_ratio"] > 0 and r["val_loss_ratio_layer_eta"] > 0
        assert set(r["val_coord_ratio"]) == {"dr", "rdphi", "dz"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_val_loss_ratio"] == pytest.approx(val[-1]["val_loss_ratio"])
    assert summary["baseline_val_loss"]["layer"] == pytest.approx(
        val[-1]["val_loss"] / val[-1]["val_loss_ratio"]
    )
    # what the analysis and the launcher read
    assert read_run(run).final_val_loss_ratio == pytest.approx(summary["final_val_loss_ratio"])
    (row,) = ledger.status_rows(run.parent, ["sharp"])
    assert row["ratio"] == pytest.approx(val[-1]["val_loss_ratio"])
    # after the fact, from the checkpoints alone: the same loss and ratios the trainer logged
    rows = run_ratios(run, [5, 10])
    for got, logged in zip(rows, val, strict=True):
        assert got["val_loss"] == pytest.approx(logged["val_loss"], rel=1e-4)
        assert got["val_loss_ratio"] == pytest.approx(logged["val_loss_ratio"], rel=1e-4)
        assert got["val_coord_ratio"] == pytest.approx(logged["val_coord_ratio"], rel=1e-4)
    with pytest.raises(ValueError, match="no complete checkpoint at step"):
        run_ratios(run, [7])


def test_physical_metric_with_absolute_targets_is_one_line_exit_2(tmp_path: Path) -> None:
    out = train(
        tmp_path / "run", tmp_path / "data", "objective.metric=physical", "objective.relative_targets=false"
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "objective.relative_targets=true" in out.stderr and "Traceback" not in out.stderr
