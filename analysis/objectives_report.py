"""The objective comparison of a sweep whose runs differ in objective (sweeps/objectives.yaml): the report's
"Objectives compared" section, one row per objective variant with its seeds pooled.

A variant is the run config's `objective.name`, `objective.mpm_target` (mpm only), `model.direction` (and
`model.merge` of a bidirectional model that concatenates); runs of one variant and width are its seeds.
Columns, each the mean ± the sample standard deviation (n − 1) over seeds:
- `val_loss_ratio` at the end of pretraining (each objective against its own trivial predictor);
- linear probes of the frozen backbone (`probe.json`, `python -m analysis.probe`) beside the same probes on
  the untrained network: log pT and η R² and PID balanced accuracy on non-noise points, noise balanced
  accuracy on all points;
- downstream adapters found below the sweep folder (sweeps/objectives_downstream.yaml and its reference):
  one table per task, a column per regime and label budget, AdapterOnly as the no-pretraining row.
The supervised objective uses labels in pretraining: its rows say so. Where an objective ran at several
widths, a table of the ratio against width follows; else one line says there is one width. Pretraining runs of
sweeps nested in the sweep folder (sweeps/objectives_width16.yaml writes runs/objectives/width16/) join the
comparison, named `<sub-sweep>/<run>`: that is how a second width enters without renaming the first.

    >>> lines = objectives_section(load_sweep(Path("runs/objectives")), Path("runs/objectives"))
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analysis.probe.report import PROBE_FILE
from analysis.runs import RUN_MARKERS, Sweep, Variant, load_sweep, variant_of
from scaling.rundir import SHARED

log = logging.getLogger(__name__)
# (probe target, point subset, metric, column label): the main targets of analysis/probe/targets.py
PROBE_COLUMNS = (
    ("log_pt", "non_noise", "r2", "log pT R²"),
    ("eta", "non_noise", "r2", "η R²"),
    ("pid", "non_noise", "balanced_accuracy", "PID bal. acc."),
    ("noise", "all", "balanced_accuracy", "noise bal. acc."),
)
# downstream metric per task: balanced accuracy (macro recall) for the imbalanced classes, pooled ARI
DOWNSTREAM_METRICS = {"pid": "macro_recall", "noise": "macro_recall", "tracking": "ari_pooled"}
DOWNSTREAM_REGIMES = ("frozen", "finetune", "scratch")
ADAPTER_ONLY = "adapter_only"
USES_LABELS = "**uses labels**"
NO_PRETRAINING = "no pretraining (AdapterOnly)"


@dataclass(kw_only=True)
class ObjectiveRun:
    """One completed pretraining run of the comparison."""

    name: str
    folder: Path
    variant: Variant
    width: int | None
    seed: int
    ratio: float
    uses_labels: bool
    probe: dict[str, Any] | None


def _folder(sweep_dir: Path, name: str) -> Path:
    """A run's folder: the other sweep's, when this one shares it (shared.json)."""
    folder = sweep_dir / name
    shared = folder / SHARED
    if shared.is_file():
        return Path(folder / json.loads(shared.read_text())["run_dir"])
    return folder


def _read(path: Path, kind: str) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) if kind == "yaml" else json.loads(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as err:
        log.warning("objective table: %s unreadable (%s), left out", path, err)
        return {}
    return data if isinstance(data, dict) else {}


def nested_sweeps(sweep_dir: Path) -> list[tuple[Path, Sweep]]:
    """Sub-folders of the sweep folder that are sweeps of pretraining runs themselves (completed runs with an
    `objective` in config.yaml): a second width of the comparison. Downstream sweeps (no completed pretraining
    run) and caches (no run folders) are not."""
    out = []
    for sub in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir()):
        if any((sub / m).exists() for m in (*RUN_MARKERS, SHARED)):
            continue  # a run of this sweep
        try:
            nested = load_sweep(sub)
        except (OSError, ValueError):
            continue
        nested.completed = [
            r for r in nested.completed if "objective" in _read(_folder(sub, r.name) / "config.yaml", "yaml")
        ]
        if nested.completed:
            out.append((sub, nested))
    return out


def read_objective_runs(sweep: Sweep, sweep_dir: Path) -> list[ObjectiveRun]:
    """The sweep's completed runs, and those of its nested pretraining sweeps (`<sub>/<run>`), with their
    variant, seed, final ratio, label use and probe.json."""
    nested = [(sub, s, f"{sub.name}/") for sub, s in nested_sweeps(sweep_dir)]
    sources = [(Path(sweep_dir), sweep, ""), *nested]
    runs = []
    for where, source, prefix in sources:
        runs += _objective_runs(source, where, prefix)
    return runs


def _objective_runs(sweep: Sweep, sweep_dir: Path, prefix: str) -> list[ObjectiveRun]:
    runs = []
    for rec in sweep.completed:
        folder = _folder(Path(sweep_dir), rec.name)
        cfg = _read(folder / "config.yaml", "yaml")
        summary = _read(folder / "summary.json", "json")
        variant = variant_of(cfg)
        runs.append(
            ObjectiveRun(
                name=prefix + rec.name,
                folder=folder,
                variant=variant,
                width=rec.width,
                seed=int(cfg.get("seed", 0)),
                ratio=rec.final_val_loss_ratio,
                uses_labels=bool(summary.get("uses_labels")) or variant.objective == "supervised",
                probe=_read(folder / PROBE_FILE, "json") or None,
            )
        )
    return runs


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation with n − 1, n) of the finite values; std is NaN for n < 2."""
    a = np.asarray([v for v in values if v is not None], dtype=float)
    a = a[np.isfinite(a)]
    if not a.size:
        return math.nan, math.nan, 0
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan, int(a.size)


def fmt_mean_std(values: list[float], n_expected: int | None = None) -> str:
    """'m ± s', 'm' for one value, '–' for none; '(n=k)' when k differs from `n_expected`."""
    m, s, n = mean_std(values)
    if n == 0:
        return "–"
    text = f"{m:.3f}" + (f" ± {s:.3f}" if n > 1 else "")
    return text + (f" (n={n})" if n_expected is not None and n != n_expected else "")


def _probe_value(probe: dict[str, Any] | None, target: str, subset: str, metric: str, source: str) -> float:
    try:
        value = probe["results"][target][subset][source][metric]  # type: ignore[index]
    except (KeyError, TypeError):
        return math.nan
    return math.nan if value is None else float(value)


def _groups(runs: list[ObjectiveRun]) -> dict[tuple[Variant, int | None], list[ObjectiveRun]]:
    """(variant, width) -> its runs (the seeds), in the table's row order."""
    out: dict[tuple[Variant, int | None], list[ObjectiveRun]] = defaultdict(list)
    for r in runs:
        out[(r.variant, r.width)].append(r)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0].order, kv[0][1] or 0)))


def _row_cells(variant: Variant, members: list[ObjectiveRun], width: int | None = None) -> list[str]:
    """[objective, direction] cells of a row; supervised (any run with uses_labels) marked."""
    label = variant.label + (f", width {width}" if width is not None else "")
    marked = any(r.uses_labels for r in members)
    return [label + (f" {USES_LABELS}" if marked else ""), variant.direction]


def pretraining_table(runs: list[ObjectiveRun]) -> str:
    """One row per variant and width: seeds, val_loss_ratio, and each main probe beside random init."""
    probed = [c for c in PROBE_COLUMNS if any(math.isfinite(_probe_value(r.probe, *c[:3], "backbone"))
                                              for r in runs)]  # fmt: skip
    head = ["objective", "direction", "width", "seeds", "val_loss_ratio"]
    for *_, label in probed:
        head += [label, f"{label}, random init"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (variant, width), members in _groups(runs).items():
        n = len(members)
        cells = [*_row_cells(variant, members), str(width or "–"), str(n)]
        cells.append(fmt_mean_std([r.ratio for r in members], n))
        for target, subset, metric, _ in probed:
            for source in ("backbone", "random_init"):
                values = [_probe_value(r.probe, target, subset, metric, source) for r in members]
                cells.append(fmt_mean_std(values, n))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gains(members: list[ObjectiveRun], column: tuple[str, str, str, str]) -> list[float]:
    """Per seed: the probe on the pretrained backbone minus the same probe on that run's untrained network."""
    target, subset, metric, _ = column
    out = []
    for r in members:
        gain = _probe_value(r.probe, target, subset, metric, "backbone") - _probe_value(
            r.probe, target, subset, metric, "random_init"
        )
        if math.isfinite(gain):
            out.append(gain)
    return out


def ranking_section(runs: list[ObjectiveRun], width: int | None = None) -> list[str]:
    """The variants ranked by their probes, and the comparison's checks with their numbers: every
    self-supervised variant beats its untrained network (the gain is positive in every seed), and the
    supervised reference (full labels) scores at least as high as each self-supervised variant. [] without
    probes. With `width`, the heading names it (one ranking per width: sizes are not ranked together)."""
    groups = {key: m for key, m in _groups(runs).items() if any(r.probe for r in m)}
    columns = [c for c in PROBE_COLUMNS
               if any(math.isfinite(_probe_value(r.probe, *c[:3], "backbone")) for m in groups.values()
                      for r in m)]  # fmt: skip
    if not groups or not columns:
        return []
    score = {key: [mean_std([_probe_value(r.probe, *c[:3], "backbone") for r in m])[0] for c in columns]
             for key, m in groups.items()}  # fmt: skip
    ranks: dict[tuple, list[int]] = defaultdict(list)
    for i in range(len(columns)):
        scored = [k for k in groups if math.isfinite(score[k][i])]
        for key in scored:  # ties share a rank: 1 + the variants scoring strictly higher
            ranks[key].append(1 + sum(score[k][i] > score[key][i] for k in scored))
    head = [
        "rank",
        "objective",
        "direction",
        *[f"{c[3]} (gain over random init)" for c in columns],
        "mean rank",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    ordered = sorted(groups, key=lambda k: (np.mean(ranks[k]) if ranks[k] else math.inf, k[0].order))
    for place, key in enumerate(ordered, start=1):
        cells = [str(place), *_row_cells(key[0], groups[key])]
        for i, c in enumerate(columns):
            m = score[key][i]
            cells.append("–" if not math.isfinite(m) else f"{m:.3f} ({fmt_mean_std(_gains(groups[key], c))})")
        cells.append(f"{np.mean(ranks[key]):.1f}" if ranks[key] else "–")
        lines.append("| " + " | ".join(cells) + " |")
    checks = []
    for key, members in groups.items():
        if any(r.uses_labels for r in members):
            continue
        for c in columns:
            gains = _gains(members, c)
            if gains:
                ok = all(g > 0 for g in gains)
                checks.append(f"- {key[0].label} ({key[0].direction}) beats its untrained network on {c[3]}: "
                              f"{'yes' if ok else 'NO'}, gain {fmt_mean_std(gains)} over {len(gains)} "
                              f"seeds")  # fmt: skip
    supervised = [k for k, m in groups.items() if any(r.uses_labels for r in m)]
    for sup in supervised:
        for i, c in enumerate(columns):
            worse = [
                f"{k[0].label} ({k[0].direction})"
                for k in groups
                if k not in supervised and math.isfinite(score[k][i]) and score[k][i] > score[sup][i]
            ]
            verdict = "yes" if not worse else "NO, below " + ", ".join(worse)
            checks.append(
                f"- {sup[0].label} {USES_LABELS} >= every self-supervised variant on {c[3]} "
                f"({score[sup][i]:.3f}): {verdict}"
            )
    return [
        "### Ranking by probes" + (f", width {width}" if width is not None else ""),
        "",
        "Variants ordered by their mean rank over the probe columns (rank 1: the highest mean over seeds). "
        "Each cell: the frozen backbone's probe, mean over seeds, and in brackets its gain over the same "
        "probe on that run's untrained network (mean ± std over seeds).",
        "",
        *lines,
        "",
        *checks,
    ]


def size_section(runs: list[ObjectiveRun]) -> str:
    """val_loss_ratio against width per variant, or one line when every variant ran at one width."""
    widths: dict[Variant, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    members: dict[Variant, list[ObjectiveRun]] = defaultdict(list)
    for r in runs:
        members[r.variant].append(r)
        if r.width is not None:
            widths[r.variant][r.width].append(r.ratio)
    if not any(len(by_width) > 1 for by_width in widths.values()):
        all_widths = sorted({w for by_width in widths.values() for w in by_width})
        shown = ", ".join(map(str, all_widths)) or "unknown"
        return (f"Loss ratio against model size: every objective ran at one width ({shown}) in this sweep, "
                "so there is no size trend to show.")  # fmt: skip
    columns = sorted({w for by_width in widths.values() for w in by_width})
    lo, hi = columns[0], columns[-1]
    lines = [
        "val_loss_ratio against model width per objective (mean ± std over seeds; the change from width "
        f"{lo} to {hi} with its standard error, sqrt(s²/n) of each width added in quadrature; negative: the "
        "larger model gets further beyond its objective's trivial predictor):",
        "",
        "| objective | direction | " + " | ".join(f"width {w}" for w in columns) + f" | change {lo} → {hi} |",
        "|" + " --- |" * (len(columns) + 3),
    ]
    changes: dict[Variant, tuple[float, float]] = {}
    for variant in sorted(widths, key=lambda v: v.order):
        cells = [fmt_mean_std(widths[variant][w]) if w in widths[variant] else "–" for w in columns]
        change = "–"
        if lo in widths[variant] and hi in widths[variant]:
            (m0, s0, n0), (m1, s1, n1) = mean_std(widths[variant][lo]), mean_std(widths[variant][hi])
            err = math.sqrt(sum((sd**2 / n) if n > 1 else math.nan for sd, n in ((s0, n0), (s1, n1))))
            changes[variant] = (m1 - m0, err)
            change = f"{m1 - m0:+.3f} ± {err:.3f}" if math.isfinite(err) else f"{m1 - m0:+.3f}"
        lines.append("| " + " | ".join([*_row_cells(variant, members[variant]), *cells, change]) + " |")
    if changes:
        best = min(changes, key=lambda v: changes[v][0])
        d, err = changes[best]
        resolved = math.isfinite(err) and abs(d) > 2 * err
        lines += ["", f"Largest fall of the ratio from width {lo} to {hi}: {best.label} ({best.direction}), "
                  f"{d:+.3f}" + (f" ± {err:.3f}" if math.isfinite(err) else "")
                  + ("" if resolved else " (within 2 standard errors of no change)" if math.isfinite(err)
                     else " (one seed at a width: no standard error)") + ". The ratio is each "
                  "objective's own loss over its own trivial predictor's, so this compares how far each "
                  "objective moves with size, not which representation is better; the probes per width "
                  "above do that."]  # fmt: skip
    return "\n".join(lines)


def backbone_run(backbone: str, runs: list[ObjectiveRun]) -> ObjectiveRun | None:
    """The pretraining run a downstream run's `backbone` path names: the same folder, else the run whose
    name (`<sub>/<run>` for a nested sweep) is the longest tail of the path, so that
    `runs/objectives/width16/knnn-s0` is the width-16 run and not the top-level `knnn-s0`."""
    path = Path(backbone)
    try:
        resolved = path.resolve()
        for run in runs:
            if run.folder.resolve() == resolved:
                return run
    except OSError:
        pass
    tails = [(len(parts), run) for run in runs
             if path.parts[-len(parts := tuple(run.name.split("/"))):] == parts]  # fmt: skip
    return max(tails, key=lambda t: t[0])[1] if tails else None


def downstream_tables(runs: list[ObjectiveRun], sweep_dir: Path) -> list[str]:
    """One table per task: a row per variant (seeds pooled) and AdapterOnly, a column per regime and label
    budget. Downstream runs are every metrics.json below the sweep folder (`analysis.downstream.report`)."""
    from analysis.downstream.report import REGIME_LABEL, collect_runs

    rows = collect_runs(Path(sweep_dir))
    # the default variant of each regime only (layers=last, standardised inputs): others are separate studies
    rows = [r for r in rows if r["variant"] == REGIME_LABEL.get(r.get("regime"), None)]
    blocks, unknown = [], set()
    for task, metric in DOWNSTREAM_METRICS.items():
        cells: dict[tuple[Any, str, int], list[float]] = defaultdict(list)
        for r in (r for r in rows if r["task"] == task):
            if r["regime"] == ADAPTER_ONLY:
                key: Any = NO_PRETRAINING
            elif (run := backbone_run(str(r["backbone"]), runs)) is not None:
                key = (run.variant, run.width)
            else:
                unknown.add(Path(str(r["backbone"])).name)
                continue
            value = r["metrics"].get(metric)
            cells[(key, r["regime"], int(r["n_train_events"]))].append(math.nan if value is None else value)
        if not cells:
            continue
        regimes = [g for g in (*DOWNSTREAM_REGIMES, ADAPTER_ONLY) if any(k[1] == g for k in cells)]
        budgets = sorted({k[2] for k in cells})
        columns = [(g, b) for g in regimes if g != ADAPTER_ONLY for b in budgets]
        head = ["objective", "direction", "seeds"] + [f"{REGIME_LABEL[g]}, {b:,} events" for g, b in columns]
        what = f"{metric} (balanced accuracy)" if metric == "macro_recall" else metric
        lines = [f"{task}: {what} on the test split", "", "| " + " | ".join(head) + " |",
                 "|" + " --- |" * len(head)]  # fmt: skip
        for (variant, width), members in _groups(runs).items():
            if not any(k[0] == (variant, width) for k in cells):
                continue
            n = len(members)
            label = _row_cells(variant, members, width if _several_widths(runs) else None)
            row = [fmt_mean_std(cells.get(((variant, width), g, b), []), n) for g, b in columns]
            lines.append("| " + " | ".join([*label, str(n), *row]) + " |")
        if ADAPTER_ONLY in regimes:
            seeds = max(len(v) for k, v in cells.items() if k[0] == NO_PRETRAINING)
            row = [fmt_mean_std(cells.get((NO_PRETRAINING, ADAPTER_ONLY, b), []), seeds) for _, b in columns]
            lines.append(f"| {NO_PRETRAINING} | – | {seeds} | " + " | ".join(row) + " |")
        blocks.append("\n".join(lines))
    if unknown:
        blocks.append(f"_Downstream runs on backbones not completed in this sweep left out: "
                      f"{', '.join(sorted(unknown))}._")  # fmt: skip
    return blocks


def _several_widths(runs: list[ObjectiveRun]) -> bool:
    return len({r.width for r in runs}) > 1


def objectives_section(sweep: Sweep, sweep_dir: Path) -> list[str]:
    """Markdown lines of the "Objectives compared" section; [] unless the completed runs differ in variant."""
    runs = read_objective_runs(sweep, Path(sweep_dir))
    if len({r.variant for r in runs}) < 2:
        return []
    md = [
        "## Objectives compared",
        "",
        "One row per objective variant (objective.name, objective.mpm_target for mpm, model.direction) and "
        "width, its seeds pooled: mean ± the sample standard deviation over seeds (n − 1). val_loss_ratio "
        "divides each objective's validation loss by its own trivial predictor's, so it says how far each "
        "gets beyond trivial, not which representation is best; the probes (frozen features, linear: R² and "
        "balanced accuracy, non-noise points but for the noise flag) and the adapters compare them on one "
        f"scale. Rows marked {USES_LABELS} pretrained on truth labels: a reference, not pretraining.",
        "",
        pretraining_table(runs),
        "",
    ]
    for (variant, width), members in _groups(runs).items():
        seeds = [r.seed for r in members]
        if len(set(seeds)) < len(seeds):
            names = ", ".join(r.name for r in members)
            md += [f"_Note: {variant.label} ({variant.direction}, width {width}) pools runs that share a "
                   f"seed ({names}): they differ in other keys._", ""]  # fmt: skip
    if not any(r.probe for r in runs):
        md += ["_No probe.json yet: `python -m analysis.probe <sweep folder>` fills the probe columns._", ""]
    if _several_widths(runs):
        for w in sorted({r.width for r in runs if r.width is not None}, reverse=True):
            ranking = ranking_section([r for r in runs if r.width == w], width=w)
            md += [*ranking, *([""] if ranking else [])]
    else:
        ranking = ranking_section(runs)
        md += [*ranking, *([""] if ranking else [])]
    md += [size_section(runs), ""]
    try:
        tables = downstream_tables(runs, Path(sweep_dir))
    except (OSError, ValueError, KeyError, TypeError) as err:
        tables = [f"_Downstream columns could not be built: {err}_"]
    if tables:
        md += ["### Downstream, per task", "",
               "Adapters on each frozen (or fine-tuned) backbone, one adapter seed per pretraining seed; "
               f"{NO_PRETRAINING}: the same adapter on the raw inputs, no pretrained weights; it has no "
               "regime, so its figure at a budget stands under every regime of that budget.", ""]  # fmt: skip
        for table in tables:
            md += [table, ""]
    return md
