"""Report sections from real downstream run directories (small in-memory splits, real training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analysis.downstream.adapters import AdapterConfig
from analysis.downstream.report import report_sections
from analysis.downstream.run import run_on_splits
from analysis.downstream.train import DownstreamConfig, OptimConfig
from tests.unit.test_downstream_train import _split

torch.set_num_threads(1)
pytestmark = pytest.mark.integration


def _run(root: Path, backbone: str, task: str, budget: int, width: int) -> None:
    cfg = DownstreamConfig(
        backbone=backbone, task=task, n_train_events=budget, stem_width=8,
        adapter=AdapterConfig(d_proj=8, n_heads=2, depth=0, mlp_hidden=16, n_queries=4, n_decoder_layers=1),
        optim=OptimConfig(steps=3, batch_events=2, warmup_steps=1), n_display_events=2,
    )  # fmt: skip
    train, test = _split(budget, 0, width=width), _split(3, 1, width=width)
    run_on_splits(cfg, root / f"{task}-{Path(backbone).name}-{budget}", train, test, width)


def test_report_sections_write_figures_tables_and_displays(tmp_path: Path) -> None:
    sweep = tmp_path / "runs"
    backbone = tmp_path / "m1"
    backbone.mkdir()
    (backbone / "summary.json").write_text(json.dumps({"params_total": 340000}))
    for task, budgets in (("pid", (2,)), ("noise", (2,)), ("tracking", (2, 4))):
        for budget in budgets:
            _run(sweep, str(backbone), task, budget, 6)
            _run(sweep, "adapter_only", task, budget, 6)
    out = tmp_path / "report"
    blocks = report_sections(sweep, out)
    text = "\n".join(blocks)
    assert "Figure 5a" in text and "Figure 5b" in text and "Table 5" in text and "Table 6" in text
    assert (out / "downstream_vs_backbone.png").stat().st_size > 1000
    assert (out / "tracking_ari_vs_labels.png").stat().st_size > 1000
    assert len(list((out / "event-display").glob("*.png"))) == 2
    assert "| kaon |" in text and "AdapterOnly recall" in text
    metrics = json.loads((sweep / "tracking-m1-4" / "metrics.json").read_text())
    assert metrics["n_train_events"] == 4 and metrics["train"]["events_per_s"] > 0
    assert report_sections(tmp_path / "empty", out) == []
