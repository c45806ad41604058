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
import yaml  # noqa: E402

from analysis.downstream.display import display_run  # noqa: E402
from analysis.runs import variant_of  # noqa: E402

log = logging.getLogger(__name__)
HEADLINE = {"pid": "accuracy", "noise": "accuracy", "tracking": "ari_pooled"}
ADAPTER_ONLY = "adapter_only"


REGIME_ORDER = ("frozen", "finetune", "scratch", ADAPTER_ONLY)
REGIME_LABEL = {"frozen": "frozen FM", "finetune": "fine-tuned FM", "scratch": "from scratch",
                ADAPTER_ONLY: "AdapterOnly"}  # fmt: skip


def collect_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every downstream result below `sweep_dir`, with `run_dir`, `backbone_size` and `variant` added."""
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
        row["variant"] = variant(row)
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


def variant(row: dict[str, Any]) -> str:
    """The labelled row a run belongs to: its regime, plus the layers read and `raw` standardisation when they
    differ from the defaults (so a variant is never drawn as the paper's comparison)."""
    regime = row.get("regime") or (ADAPTER_ONLY if row["backbone"] == ADAPTER_ONLY else "frozen")
    label = REGIME_LABEL.get(regime, regime)
    if regime != ADAPTER_ONLY and row.get("layers", "last") != "last":
        label += f" [{row['layers']}]"
    if row.get("standardize") is False:
        label += " [unstandardised]"
    return label


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
    a = a[np.isfinite(a)]
    if not a.size:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std()) if a.size > 1 else 0.0


def _value(r: dict[str, Any], metric: str | None = None) -> float:
    v = r["metrics"].get(metric or HEADLINE[r["task"]])
    return float("nan") if v is None else float(v)


def _group(runs: list[dict[str, Any]], task: str, budget: int | None = None) -> dict[tuple, list[float]]:
    """(backbone, size, budget) -> headline values over seeds (the default variant of each regime)."""
    out: dict[tuple, list[float]] = defaultdict(list)
    for r in runs:
        if r["task"] == task and (budget is None or r["n_train_events"] == budget):
            out[(r["backbone"], r["backbone_size"], r["n_train_events"])].append(_value(r))
    return out


def _largest_backbone(runs: list[dict[str, Any]]) -> str | None:
    sized = [r for r in runs if r["backbone"] != ADAPTER_ONLY and np.isfinite(r["backbone_size"])]
    return max(sized, key=lambda r: r["backbone_size"])["backbone"] if sized else None


def _series(
    rows: list[dict[str, Any]], key: str, metric: str | None = None
) -> dict[str, list[tuple[float, float, float, int]]]:
    """variant -> sorted [(x, mean, std, n_seeds)] with x = the row field `key`, over seeds."""
    vals: dict[tuple[str, float], list[float]] = defaultdict(list)
    for r in rows:
        vals[(r["variant"], float(r[key]))].append(_value(r, metric))
    out: dict[str, list[tuple[float, float, float, int]]] = defaultdict(list)
    for (name, x), v in sorted(vals.items()):
        out[name].append((x, *_mean_std(v), len(v)))
    return out


def _variant_order(name: str) -> tuple[int, str]:
    base = next((i for i, r in enumerate(REGIME_ORDER) if name.startswith(REGIME_LABEL[r])), 9)
    return base, name


def _draw(ax: plt.Axes, series: dict[str, list[tuple[float, float, float, int]]]) -> None:
    """One line per variant with a mean +- std band over seeds; AdapterOnly dashed."""
    for name in sorted(series, key=_variant_order):
        x, m, e, _ = map(np.asarray, zip(*series[name], strict=True))
        ls = "--" if name == REGIME_LABEL[ADAPTER_ONLY] else "-"
        (line,) = ax.plot(x, m, marker="o", ms=4, ls=ls, label=name)
        ax.fill_between(x, m - e, m + e, color=line.get_color(), alpha=0.2, lw=0)


def readable_axes(ax: plt.Axes, xs: list[float], xlabel: str) -> None:
    """Log x with plain tick labels at the data's own values (thinned so they never overlap), plain y
    (no offset or scientific notation)."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    ax.set_xscale("log")
    ticks = sorted(set(xs))
    while len(ticks) > 6:
        ticks = ticks[::2] if ticks[-1] in ticks[::2] else ticks[::2] + [ticks[-1]]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:,.0f}" if t >= 1 else f"{t:g}" for t in ticks], fontsize=8)
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    ax.yaxis.set_major_formatter(fmt)
    ax.set_xlabel(xlabel)


def figure_vs_backbone(runs: list[dict[str, Any]], out_dir: Path) -> str | None:
    """Figure 5a: headline metric vs backbone size per task at its smallest and largest label budgets, one
    line per regime (AdapterOnly beside each backbone when run at its width) with mean +- std over seeds."""
    tasks = [t for t in HEADLINE if any(r["task"] == t and r["backbone"] != ADAPTER_ONLY for r in runs)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.8 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = [r for r in runs if r["task"] == task]
        budget = max(r["n_train_events"] for r in rows)
        sized = [r for r in rows if r["n_train_events"] == budget and np.isfinite(r["backbone_size"])]
        _draw(ax, _series(sized, "backbone_size"))
        alone = _mean_std(
            [_value(r) for r in rows if r["backbone"] == ADAPTER_ONLY and r["n_train_events"] == budget]
        )
        if np.isfinite(alone[0]):  # AdapterOnly without a backbone: its own stem width, one level
            ax.axhline(alone[0], color="grey", ls=":", label="AdapterOnly (own stem width)")
        readable_axes(ax, [r["backbone_size"] for r in sized], "backbone parameters")
        ax.set(ylabel=HEADLINE[task], title=f"{task} ({budget:,} labelled events)")
        ax.legend(fontsize=7)
    return _figure_block(
        fig, out_dir / "downstream_vs_backbone.png", "Downstream performance vs backbone size (Figure 5a)"
    )


def figure_vs_labels(runs: list[dict[str, Any]], out_dir: Path) -> str | None:
    """Figure 5b: headline metric vs labelled events per task, one line per regime on the largest backbone,
    mean +- std bands over seeds, AdapterOnly dashed."""
    tasks = [t for t in HEADLINE if any(r["task"] == t for r in runs)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.8 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = _on_largest([r for r in runs if r["task"] == task])
        _draw(ax, _series(rows, "n_train_events"))
        readable_axes(ax, [r["n_train_events"] for r in rows], "labelled training events")
        ax.set(ylabel=HEADLINE[task], title=task)
        ax.legend(fontsize=7)
    return _figure_block(
        fig, out_dir / "tracking_ari_vs_labels.png", "Downstream performance vs labelled events (Figure 5b)"
    )


def _on_largest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs on the largest backbone, plus AdapterOnly (without a backbone, or at that backbone's width)."""
    big = _largest_backbone(rows)
    return [r for r in rows if r["backbone"] in (big, ADAPTER_ONLY)]


def ratio_table(runs: list[dict[str, Any]], metrics: dict[str, str] | None = None) -> str | None:
    """Per task and label budget on the largest backbone: every regime's mean +- std over seeds and the
    frozen FM / AdapterOnly ratio (the paper's headline comparison; 2.9x at Figure 5b's smallest budget).
    `metrics` replaces a task's headline (e.g. {"noise": "macro_recall"})."""
    metrics = {**HEADLINE, **(metrics or {})}
    lines = []
    for task in HEADLINE:
        rows = _on_largest([r for r in runs if r["task"] == task])
        if not rows:
            continue
        names = sorted({r["variant"] for r in rows}, key=_variant_order)
        table = _series(rows, "n_train_events", metrics[task])
        head = (
            f"| {task} {metrics[task]}: labelled events | "
            + " | ".join(names)
            + " | frozen FM / AdapterOnly |"
        )
        lines += [head, "|---" * (len(names) + 2) + "|"]
        for budget in sorted({r["n_train_events"] for r in rows}):
            cell = {n: next((p for p in table[n] if p[0] == budget), None) for n in names}
            fm, only = cell.get(REGIME_LABEL["frozen"]), cell.get(REGIME_LABEL[ADAPTER_ONLY])
            ratio = f"{fm[1] / only[1]:.2f}x" if fm and only and only[1] else "-"
            text = [f"{p[1]:.3f} ± {p[2]:.3f} (n={p[3]})" if p else "-" for p in cell.values()]
            lines.append(f"| {budget:,} | " + " | ".join(text) + f" | {ratio} |")
        lines.append("")
    if not lines:
        return None
    return (
        "### What pretraining buys: regimes by label budget (largest backbone)\n\n"
        "Mean ± std over seeds (n = seeds) of the metric named in each header.\n\n" + "\n".join(lines)
    )


def _figure_block(fig: plt.Figure, path: Path, title: str) -> str:
    """Save `fig` as `path` (closing it) and return its Markdown block headed `title`."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"### {title}\n\n![]({path.name})\n"


def per_class_table(runs: list[dict[str, Any]], task: str) -> str | None:
    """Tables 5-6: per-class precision/recall of the largest backbone and of AdapterOnly (largest budget)."""
    rows = [r for r in runs if r["task"] == task and r["variant"] in (REGIME_LABEL["frozen"], "AdapterOnly")]
    if not rows:
        return None
    budget = max(r["n_train_events"] for r in rows)
    rows = [r for r in rows if r["n_train_events"] == budget]
    best = max(
        (r for r in rows if r["variant"] == REGIME_LABEL["frozen"]),
        key=lambda r: r["backbone_size"],
        default=None,
    )
    only = next((r for r in rows if r["variant"] == REGIME_LABEL[ADAPTER_ONLY]), None)
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


def backbone_objective(row: dict[str, Any]) -> str:
    """The pretraining variant of a run's backbone (objective, MPM target, direction), "" for AdapterOnly or
    an unreadable config: the size figures compare backbones of one objective only."""
    if row["backbone"] == ADAPTER_ONLY:
        return ""
    try:
        cfg = yaml.safe_load((Path(row["backbone"]) / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return ""
    v = variant_of(cfg if isinstance(cfg, dict) else {})
    return f"{v.label} ({v.direction})"


def one_objective(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """Where the backbones differ in pretraining objective (the objective comparison), the runs on k-NNN
    backbones (else the first objective's) and AdapterOnly, with a note; else the runs unchanged."""
    kinds = {b: backbone_objective(r) for b, r in {r["backbone"]: r for r in runs}.items()}
    objectives = sorted({k for k in kinds.values() if k})
    if len(objectives) < 2:
        return runs, None
    keep = next((o for o in objectives if o.startswith("knnn ")), objectives[0])
    note = (f"_Backbones of {len(objectives)} pretraining objectives: the figures and tables of this section "
            f"use the {keep} backbones (and AdapterOnly) only, so that size means size; the objectives are "
            "compared per task in \"Objectives compared\"._\n")  # fmt: skip
    return [r for r in runs if kinds[r["backbone"]] in ("", keep)], note


def report_sections(sweep_dir: Path, out_dir: Path) -> list[str]:
    """Markdown blocks (figures written into `out_dir`) for the study report; [] without downstream runs."""
    runs, note = one_objective(collect_runs(Path(sweep_dir)))
    if not runs:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = [note] if note else []
    blocks += [b for b in (figure_vs_backbone(runs, out_dir), figure_vs_labels(runs, out_dir)) if b]
    blocks += [b for b in (ratio_table(runs),) if b]
    blocks += [b for b in (per_class_table(runs, "pid"), per_class_table(runs, "noise")) if b]
    tracking = [r for r in runs if r["task"] == "tracking" and r["variant"] == REGIME_LABEL["frozen"]]
    if tracking:
        best = max(tracking, key=lambda r: (r["n_train_events"], r["backbone_size"]))
        try:
            pngs = display_run(best["run_dir"], out_dir / "event-display", n_events=3)
            links = "\n".join(f"![](event-display/{p.name})" for p in pngs)
            blocks.append(f"### Event displays ({Path(best['backbone']).name})\n\n{links}\n")
        except ValueError as err:
            log.warning("no event display: %s", err)
    return ["## Downstream tasks\n"] + blocks
