"""Report sections from real downstream run directories (small in-memory splits, real training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.downstream.adapters import AdapterConfig
from analysis.downstream.report import report_sections
from analysis.downstream.run import run_on_splits
from analysis.downstream.train import AdapterBudgetConfig, AdapterScheduleConfig, DownstreamConfig
from tests.unit.test_downstream_train import _split

torch.set_num_threads(1)
pytestmark = pytest.mark.integration


def _run(root: Path, backbone: str, task: str, budget: int, width: int) -> None:
    cfg = DownstreamConfig(
        backbone=backbone, task=task, n_train_events=budget, stem_width=8,
        adapter=AdapterConfig(d_proj=8, n_heads=2, depth=0, mlp_hidden=16, n_queries=4, n_decoder_layers=1),
        schedule=AdapterScheduleConfig(warmup_steps=1),
        budget=AdapterBudgetConfig(steps=3, batch_events=2), n_display_events=2,
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


def _metrics(root: Path, name: str, **row: object) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps(row))


def test_ratio_table_and_bands_over_seeds_per_regime(tmp_path: Path) -> None:
    from analysis.downstream.report import collect_runs, ratio_table

    big, small = tmp_path / "w64", tmp_path / "w16"
    for bb, size in ((big, 64000), (small, 16000)):
        bb.mkdir()
        (bb / "summary.json").write_text(json.dumps({"params_total": size}))
    values = {("frozen", 100): [0.60, 0.62, 0.64], ("adapter_only", 100): [0.30, 0.31, 0.29],
              ("frozen", 3000): [0.80, 0.81, 0.82], ("adapter_only", 3000): [0.70, 0.70, 0.70],
              ("finetune", 100): [0.66, 0.65, 0.67]}  # fmt: skip
    for (regime, budget), vals in values.items():
        for seed, v in enumerate(vals):
            backbone = "adapter_only" if regime == "adapter_only" else str(big)
            _metrics(tmp_path / "runs", f"{regime}-{budget}-s{seed}", task="tracking", backbone=backbone,
                     regime=regime, layers="last", n_train_events=budget, seed=seed,
                     metrics={"ari_pooled": v})  # fmt: skip
    _metrics(tmp_path / "runs", "small", task="tracking", backbone=str(small), regime="frozen",
             n_train_events=100, seed=0, metrics={"ari_pooled": 0.1})  # fmt: skip
    _metrics(tmp_path / "runs", "prenorm", task="tracking", backbone=str(big), regime="frozen",
             layers="prenorm", n_train_events=100, seed=0, metrics={"ari_pooled": 0.9})  # fmt: skip
    text = ratio_table(collect_runs(tmp_path / "runs"))
    head = "| tracking ari_pooled: labelled events | frozen FM | frozen FM [prenorm] | fine-tuned FM |"
    assert head in text  # a variant is its own labelled column, never the paper's
    row = "| 100 | 0.620 ± 0.016 (n=3) | 0.900 ± 0.000 (n=1) | 0.660 ± 0.008 (n=3) | 0.300 ± 0.008 (n=3) |"
    assert row + " 2.07x |" in text
    assert "| 3,000 |" in text and "1.16x" in text and "0.100" not in text  # the largest backbone only
    blocks = report_sections(tmp_path / "runs", tmp_path / "out")
    assert any("Figure 5a" in b for b in blocks) and any("What pretraining buys" in b for b in blocks)


def test_axes_are_readable_no_offset_no_overlapping_ticks() -> None:
    import matplotlib.pyplot as plt

    from analysis.downstream.report import readable_axes

    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    budgets = [100, 200, 300, 500, 1000, 1500, 2000, 3000, 10000, 30000]
    ax.plot(budgets, 0.1123 + 1e-5 * np.arange(len(budgets)))  # the span that drew "+1.123e-1" before
    readable_axes(ax, budgets, "labelled training events")
    fig.canvas.draw()
    assert ax.yaxis.get_offset_text().get_text() == ""
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert 2 <= len(labels) <= 6 and labels[-1].get_text() == "30,000"
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False))  # no two tick labels overlap
    plt.close(fig)
