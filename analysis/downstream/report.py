"""Report sections of a downstream sweep (FM4NPP Figure 5a/5b, Tables 5-6, event displays).

`analysis/report.py` calls `report_sections(sweep_dir, out_dir)` when this module exists; it returns Markdown
blocks whose figures it has written into `out_dir`.

    >>> blocks = report_sections(Path("runs/downstream"), Path("report"))

A run is any folder below `sweep_dir` holding a `metrics.json` written by `python -m analysis.downstream`.
Backbone size is the backbone run's `summary.json` `params_total` when readable, else its feature width.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.downstream.display import display_run  # noqa: E402

log = logging.getLogger(__name__)
HEADLINE = {"pid": "accuracy", "noise": "accuracy", "tracking": "ari_pooled"}
ADAPTER_ONLY = "adapter_only"


def collect_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every downstream result below `sweep_dir`, with `run_dir` and `backbone_size` added."""
    runs = []
    for path in sorted(Path(sweep_dir).rglob("metrics.json")):
        try:
            row = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        if "task" not in row or "metrics" not in row:
            continue
        row["metrics"] = _nan_for_null(row["metrics"])  # metrics.json is strict JSON: null = undefined
        row["run_dir"] = path.parent
        row["backbone_size"] = _backbone_size(row)
        runs.append(row)
    return runs


def _nan_for_null(value: Any) -> Any:
    if value is None:
        return float("nan")
    if isinstance(value, dict):
        return {k: _nan_for_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return value


def _backbone_size(row: dict[str, Any]) -> float:
    if row["backbone"] == ADAPTER_ONLY:
        return float("nan")
    summary = Path(row["backbone"]) / "summary.json"
    try:
        return float(json.loads(summary.read_text())["params_total"])
    except (OSError, KeyError, ValueError):
        return float(row.get("feature_width", float("nan")))


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(np.nanmean(a)), float(np.nanstd(a)) if a.size > 1 else 0.0


def _group(runs: list[dict[str, Any]], task: str, budget: int | None = None) -> dict[tuple, list[float]]:
    """(backbone, size, budget) -> headline values over seeds."""
    out: dict[tuple, list[float]] = defaultdict(list)
    for r in runs:
        if r["task"] == task and (budget is None or r["n_train_events"] == budget):
            key = (r["backbone"], r["backbone_size"], r["n_train_events"])
            out[key].append(float(r["metrics"].get(HEADLINE[task], float("nan"))))
    return out


def _figure_block(fig: plt.Figure, path: Path, title: str) -> str:
    """Save `fig` as `path` (closing it) and return its Markdown block headed `title`."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"### {title}\n\n![]({path.name})\n"


def figure_vs_backbone(runs: list[dict[str, Any]], out_dir: Path) -> str | None:
    """Figure 5a: headline metric vs backbone size per task at each task's largest label budget."""
    tasks = [t for t in HEADLINE if any(r["task"] == t for r in runs)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        budget = max(r["n_train_events"] for r in runs if r["task"] == task)
        groups = _group(runs, task, budget)
        pts = sorted((size, *_mean_std(v)) for (bb, size, _), v in groups.items() if bb != ADAPTER_ONLY)
        if pts:
            s, m, e = map(np.asarray, zip(*pts, strict=True))
            ax.errorbar(s, m, yerr=e, marker="o", label="frozen backbone + adapter")
            ax.set_xscale("log")
        for (bb, _, _), v in groups.items():
            if bb == ADAPTER_ONLY:
                ax.axhline(_mean_std(v)[0], color="grey", ls="--", label="AdapterOnly")
        ax.set(
            xlabel="backbone parameters", ylabel=HEADLINE[task], title=f"{task} ({budget} labelled events)"
        )
        ax.legend(fontsize=8)
    return _figure_block(
        fig, out_dir / "downstream_vs_backbone.png", "Downstream performance vs backbone size (Figure 5a)"
    )


def figure_vs_labels(runs: list[dict[str, Any]], out_dir: Path) -> str | None:
    """Figure 5b: tracking ARI vs labelled events, one line per backbone, AdapterOnly dashed."""
    groups = _group(runs, "tracking")
    if not groups:
        return None
    lines: dict[tuple, list[tuple[int, float, float]]] = defaultdict(list)
    for (bb, size, budget), v in groups.items():
        lines[(bb, size)].append((budget, *_mean_std(v)))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (bb, size), pts in sorted(lines.items(), key=lambda kv: np.nan_to_num(kv[0][1], nan=-1.0)):
        b, m, e = map(np.asarray, zip(*sorted(pts), strict=True))
        label = "AdapterOnly" if bb == ADAPTER_ONLY else f"{Path(bb).name} ({size:.3g})"
        ax.errorbar(b, m, yerr=e, marker="o", ls="--" if bb == ADAPTER_ONLY else "-", label=label)
    ax.set(xscale="log", xlabel="labelled training events", ylabel="ARI (pooled)", title="Track finding")
    ax.legend(fontsize=8)
    return _figure_block(
        fig, out_dir / "tracking_ari_vs_labels.png", "Track-finding ARI vs labelled events (Figure 5b)"
    )


def per_class_table(runs: list[dict[str, Any]], task: str) -> str | None:
    """Tables 5-6: per-class precision/recall of the largest backbone and of AdapterOnly (largest budget)."""
    rows = [r for r in runs if r["task"] == task]
    if not rows:
        return None
    budget = max(r["n_train_events"] for r in rows)
    rows = [r for r in rows if r["n_train_events"] == budget]
    best = max(
        (r for r in rows if r["backbone"] != ADAPTER_ONLY), key=lambda r: r["backbone_size"], default=None
    )
    only = next((r for r in rows if r["backbone"] == ADAPTER_ONLY), None)
    picked = [(f"backbone {Path(best['backbone']).name}", best)] if best else []
    picked += [("AdapterOnly", only)] if only else []
    names = list(picked[0][1]["metrics"]["per_class"])
    head = "| class | " + " | ".join(f"{n} precision | {n} recall" for n, _ in picked) + " |"
    sep = "|---" * (1 + 2 * len(picked)) + "|"
    body = []
    for c in names:
        cells = []
        for _, r in picked:
            pc = r["metrics"]["per_class"][c]
            cells += [f"{pc['precision']:.3f}", f"{pc['recall']:.3f}"]
        body.append(f"| {c} | " + " | ".join(cells) + " |")
    acc = ", ".join(f"{n}: accuracy {r['metrics']['accuracy']:.3f}" for n, r in picked)
    title = "Particle identification (Table 5)" if task == "pid" else "Noise tagging (Table 6)"
    return (
        f"### {title}\n\n{budget} labelled events, seed {picked[0][1]['seed']}; {acc}.\n\n"
        + "\n".join([head, sep, *body])
        + "\n"
    )


def report_sections(sweep_dir: Path, out_dir: Path) -> list[str]:
    """Markdown blocks (figures written into `out_dir`) for the study report; [] without downstream runs."""
    runs = collect_runs(Path(sweep_dir))
    if not runs:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = [b for b in (figure_vs_backbone(runs, out_dir), figure_vs_labels(runs, out_dir)) if b]
    blocks += [b for b in (per_class_table(runs, "pid"), per_class_table(runs, "noise")) if b]
    tracking = [r for r in runs if r["task"] == "tracking" and r["backbone"] != ADAPTER_ONLY]
    if tracking:
        best = max(tracking, key=lambda r: (r["n_train_events"], r["backbone_size"]))
        try:
            pngs = display_run(best["run_dir"], out_dir / "event-display", n_events=3)
            links = "\n".join(f"![](event-display/{p.name})" for p in pngs)
            blocks.append(f"### Event displays ({Path(best['backbone']).name})\n\n{links}\n")
        except ValueError as err:
            log.warning("no event display: %s", err)
    return ["## Downstream tasks\n"] + blocks
