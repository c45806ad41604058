"""MPM, contrastive and the supervised reference through `python -m scaling.train` (DeepSpeed, one CPU
process): each writes its baseline, logs val_loss_ratio against it, and the summary says which used labels."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tiny_train import train_tiny

pytestmark = pytest.mark.integration


def train(run_dir: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    return train_tiny(run_dir, data, *overrides, difficulty_events=32)


def _val_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "val"]


@pytest.mark.parametrize(
    ("name", "overrides", "baseline"),
    [
        ("mpm", ["model.direction=bidirectional", "objective.codebook_size=32"], "marginal"),
        ("contrastive", ["budget.micro_batch_events=2", "model.direction=bidirectional"], "constant"),
        ("supervised", [], "marginal"),
    ],
)
def test_objective_run_logs_its_ratio(tmp_path: Path, name: str, overrides: list[str], baseline: str) -> None:
    run = tmp_path / "sweep" / name
    out = train(run, tmp_path / "data", f"objective.name={name}", *overrides)
    assert out.returncode == 0, out.stderr[-3000:]
    table = json.loads((run / "baseline.json").read_text())
    assert list(table) == [baseline]
    if name == "mpm":  # the codebook is stored with the run
        assert np.asarray(table["marginal"]["codebook"]).shape == (32, 5)
    val = _val_rows(run)
    if name == "mpm":  # masked top-1 accuracy, the most frequent token's rate and the codebook perplexity
        for r in val:
            assert 0 <= r["val_top1"] <= 1 and 0 < r["val_majority_rate"] <= 1, r
            assert 1 <= r["val_perplexity"] <= 32, r
    else:
        assert all("val_top1" not in r for r in val)
    assert [r["step"] for r in val] == [5, 10]
    assert all(np.isfinite(r["val_loss_ratio"]) and r["val_loss_ratio"] > 0 for r in val)
    assert all("val_coord_ratio" not in r for r in val)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["objective"] == name and summary["uses_labels"] == (name == "supervised")
    assert summary["flops"] > 0
    print(f"{name}: val_loss_ratio {[round(r['val_loss_ratio'], 3) for r in val]}")
