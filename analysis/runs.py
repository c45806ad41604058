"""Read what runs wrote: a sweep folder of run directories, or a plain CSV table, into tidy records.

A run directory (README 'The run directory') holds config.yaml, status.json, metrics.jsonl and, once
completed, summary.json. Only completed runs enter the size/data/joint fits; the others are listed as excluded
with the reason, and their partial validation curves stay available for the compute frontier. A run the
sweep shares from another (`shared.json`, written by the launcher for the spec key `shared`) is read in place
from the other sweep's folder, under this sweep's run name. A WSD run's `branches.jsonl` rows
(cooldown branches, scaling.train.branches) become records of their own in `RunRecord.branches`, with
`source` "cooldown_branch": each is a completed cooldown, one (N, D, C, loss) point for the compute and joint
laws, even when the run that branched them has not finished.

    >>> sweep = load_sweep(Path("runs/quickstart"))
    >>> [r.name for r in sweep.completed], sweep.excluded
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scaling.rundir import CONFIG, METRICS, SHARED, STATUS, SUMMARY

log = logging.getLogger(__name__)
RUN_MARKERS = (CONFIG, STATUS, METRICS, SUMMARY)
BRANCHES = "branches.jsonl"  # scaling.train.branches.BRANCHES (not imported: the analysis needs no torch)
RUN, COOLDOWN_BRANCH = "run", "cooldown_branch"  # RunRecord.source


@dataclass(kw_only=True)
class Curve:
    """One run's validation (or training) curve; every array has the same length."""

    step: np.ndarray
    tokens: np.ndarray
    events: np.ndarray
    flops: np.ndarray
    loss: np.ndarray


@dataclass(kw_only=True)
class RunRecord:
    """One run: identity, axis values from its config, totals from its summary, and its curves."""

    name: str
    state: str
    model: str = ""
    width: int | None = None
    fraction: float | None = None
    lr: float | None = None
    params_total: float = math.nan
    params_non_embedding: float = math.nan
    tokens: float = math.nan
    events: float = math.nan
    flops: float = math.nan
    final_val_loss: float = math.nan
    best_val_loss: float = math.nan
    final_val_loss_ratio: float = math.nan  # val loss / the lookup baseline's on the same events
    best_val_loss_ratio: float = math.nan
    gpu_hours: float = math.nan
    device: str = ""
    world_size: int | None = None
    val: Curve | None = None
    train: Curve | None = None
    val_ratio: Curve | None = None  # the val_loss_ratio curve, where the trainer logged one
    ratio_source: str = "metrics.jsonl"  # or ratios.json: re-evaluated after the fact (scaling.train.ratios)
    flops_assumed: bool = False  # FLOPs taken as 6·N·D because the source had none
    budget_points: list[dict[str, float]] = field(default_factory=list)  # summary's budget checkpoints
    setting: str = (
        ""  # the objective's target setting: losses of runs with different settings are in other units
    )
    shared_from: str = ""  # '<sweep>/<run>': trained by another sweep, read in place from its folder
    steps: float = math.nan  # optimizer steps (summary.json; a branch: the step its cooldown ended at)
    source: str = RUN  # RUN, or COOLDOWN_BRANCH: a branch point of the run named `parent`
    parent: str = ""
    branch_from: int | None = None  # a branch: the step of the run it was cooled down from
    branches: list[RunRecord] = field(default_factory=list)  # this run's cooldown branches (branches.jsonl)


@dataclass(kw_only=True)
class Sweep:
    """All runs of a sweep: `completed` enter fits; `excluded` holds (run name, reason)."""

    name: str
    source: Path
    completed: list[RunRecord] = field(default_factory=list)
    partial: list[RunRecord] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def all_runs(self) -> list[RunRecord]:
        return self.completed + self.partial

    @property
    def branch_points(self) -> list[RunRecord]:
        """Every run's cooldown branches (completed cooldowns, also of runs that have not finished)."""
        return [b for run in self.all_runs for b in run.branches]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); rewrite or remove the file") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def read_metrics(path: Path, val_key: str = "val_loss") -> tuple[Curve | None, Curve | None]:
    """(val curve of `val_key`, train curve) from metrics.jsonl; a torn or bad line is skipped with a
    warning."""
    rows: dict[str, list[dict[str, Any]]] = {"val": [], "train": []}
    if not path.exists():
        return None, None
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d: not JSON, skipped", path, i)
            continue
        if isinstance(row, dict) and row.get("kind") in rows:
            rows[row["kind"]].append(row)
    val = _curve(rows["val"], val_key)
    return val, _curve(rows["train"], "loss")


def _curve(rows: list[dict[str, Any]], loss_key: str) -> Curve | None:
    def col(key: str) -> np.ndarray:
        return np.array([_num(r.get(key)) for r in rows], dtype=float)

    rows = [r for r in rows if _num(r.get(loss_key)) == _num(r.get(loss_key))]  # drop rows without a loss
    if not rows:
        return None
    curve = Curve(
        step=col("step"), tokens=col("tokens"), events=col("events"), flops=col("flops"), loss=col(loss_key)
    )
    order = np.argsort(curve.step, kind="stable")
    return Curve(**{k: getattr(curve, k)[order] for k in ("step", "tokens", "events", "flops", "loss")})


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def read_run(run_dir: Path) -> RunRecord:
    """One run directory into a record (summary fields are NaN where summary.json is absent)."""
    status = _read_json(run_dir / "status.json") if (run_dir / "status.json").exists() else {}
    cfg: dict[str, Any] = {}
    if (run_dir / "config.yaml").exists():
        try:
            cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{run_dir / 'config.yaml'}: not valid YAML ({err})") from err
    summary = _read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
    model, data, opt = cfg.get("model") or {}, cfg.get("data") or {}, cfg.get("optimizer") or {}
    val, train = read_metrics(run_dir / "metrics.jsonl")
    val_ratio, _ = read_metrics(run_dir / "metrics.jsonl", "val_loss_ratio")
    rec = RunRecord(
        name=run_dir.name,
        state=str(status.get("state", "completed" if summary else "unknown")),
        model=str(summary.get("model") or model.get("name") or ""),
        width=_int(summary.get("width", model.get("width"))),
        fraction=_opt(data.get("fraction")),
        lr=_opt(opt.get("lr")),
        device=str(summary.get("device") or ""),
        world_size=_int(summary.get("world_size")),
        val=val,
        train=train,
        val_ratio=val_ratio,
        setting=target_setting(cfg.get("objective") or {}),
    )
    for key in (
        "params_total",
        "params_non_embedding",
        "tokens",
        "events",
        "flops",
        "final_val_loss",
        "best_val_loss",
        "final_val_loss_ratio",
        "best_val_loss_ratio",
        "gpu_hours",
        "steps",
    ):
        setattr(rec, key, _num(summary.get(key)))
    rec.budget_points = [
        {"step": _num(b.get("step")), "tokens": _num(b.get("tokens")), "loss": _num(b.get("val_loss"))}
        for b in summary.get("budget_checkpoints") or []
        if isinstance(b, dict)
    ]
    if val is not None and not summary:  # a partial run: totals so far, from its curve
        rec.tokens, rec.events, rec.flops = val.tokens[-1], val.events[-1], val.flops[-1]
        rec.final_val_loss, rec.best_val_loss = val.loss[-1], float(np.nanmin(val.loss))
        if val_ratio is not None:
            rec.final_val_loss_ratio = val_ratio.loss[-1]
            rec.best_val_loss_ratio = float(np.nanmin(val_ratio.loss))
    if (run_dir / "ratios.json").exists():
        _apply_reevaluated_ratios(rec, run_dir / "ratios.json")
    rec.branches = [b for row in read_branch_rows(run_dir / BRANCHES) if (b := _branch_record(rec, row))]
    return rec


SETTING_KEYS = ("name", "metric", "target_scaling", "relative_targets", "loss", "mpm_target")


def target_setting(objective: dict[str, Any]) -> str:
    """The objective keys that set a loss's units (k-NNN in cm or in the normalised cube, scaled targets,
    the loss function): runs that differ in them cannot share a law. '' for a run without a config."""
    mpm = objective.get("name") == "mpm"
    keys = [k for k in SETTING_KEYS if k in objective and (k != "mpm_target" or mpm)]
    return " ".join(f"{k}={objective[k]}" for k in keys)


def one_setting(runs: list[RunRecord]) -> tuple[list[RunRecord], list[RunRecord], str]:
    """The runs of the most common target setting (the first run's on a tie), and the others: a law over
    losses in different units (say the paper's normalised k-NNN beside the cm metric) is meaningless."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.setting] = counts.get(run.setting, 0) + 1
    if len(counts) <= 1:
        return list(runs), [], next(iter(counts), "")
    setting = max(counts, key=lambda k: counts[k])  # dicts keep insertion order: ties go to the first run's
    return [r for r in runs if r.setting == setting], [r for r in runs if r.setting != setting], setting


def _apply_reevaluated_ratios(rec: RunRecord, path: Path) -> None:
    """Ratios re-evaluated after the fact (`python -m scaling.train.ratios`) replace the logged ones: the run
    was trained before the trainer logged them, or its baseline's definition changed since. The ratio curve
    takes the re-evaluated checkpoints' steps (tokens, events, FLOPs from the val curve at the same steps)."""
    doc = _read_json(path)
    rows = [r for r in doc.get("rows") or [] if isinstance(r, dict) and _num(r.get("val_loss_ratio")) == _num(
        r.get("val_loss_ratio"))]  # fmt: skip
    if not rows:
        raise ValueError(
            f"{path}: no rows with val_loss_ratio; rerun python -m scaling.train.ratios {path.parent}"
        )
    rows.sort(key=lambda r: _num(r.get("step")))
    step = np.array([_num(r.get("step")) for r in rows])
    ratio = np.array([_num(r.get("val_loss_ratio")) for r in rows])

    def at(attr: str) -> np.ndarray:
        if rec.val is None:
            return np.full(len(step), math.nan)
        return np.array([getattr(rec.val, attr)[rec.val.step == s][-1] if (rec.val.step == s).any()
                         else math.nan for s in step])  # fmt: skip

    rec.val_ratio = Curve(step=step, tokens=at("tokens"), events=at("events"), flops=at("flops"), loss=ratio)
    last_step = rec.val.step[-1] if rec.val is not None else step[-1]
    if step[-1] == last_step:
        rec.final_val_loss_ratio = float(ratio[-1])
    rec.best_val_loss_ratio = float(np.nanmin(ratio))
    rec.ratio_source = "ratios.json"


def read_branch_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's branches.jsonl (none when absent); a torn or bad line is skipped with a warning."""
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d: not JSON, skipped", path, i)
            continue
        if isinstance(row, dict) and "branch_from" in row:
            rows.append(row)
    return rows


def _branch_record(parent: RunRecord, row: dict[str, Any]) -> RunRecord | None:
    """A branch row as a completed one-point run (`<run>@cooldown<step>`); None when it has no finite
    validation loss (a branch abandoned after non-finite steps)."""
    loss, ratio = _num(row.get("val_loss")), _num(row.get("val_loss_ratio"))
    if not math.isfinite(loss):
        return None
    step, tokens, events, flops = (_num(row.get(k)) for k in ("steps", "tokens", "events", "flops"))

    def point(value: float) -> Curve:
        return Curve(step=np.array([step]), tokens=np.array([tokens]), events=np.array([events]),
                     flops=np.array([flops]), loss=np.array([value]))  # fmt: skip

    params = {k: _num(row.get(k, getattr(parent, k))) for k in ("params_total", "params_non_embedding")}
    start = _int(row.get("branch_from"))
    return RunRecord(
        name=f"{parent.name}@cooldown{start}",
        state="completed",
        model=parent.model,
        width=parent.width,
        fraction=parent.fraction,
        lr=parent.lr,
        **params,
        tokens=tokens,
        events=events,
        flops=flops,
        final_val_loss=loss,
        best_val_loss=loss,
        final_val_loss_ratio=ratio,
        best_val_loss_ratio=ratio,
        device=parent.device,
        world_size=parent.world_size,
        val=point(loss),
        val_ratio=point(ratio) if math.isfinite(ratio) else None,
        steps=step,
        source=COOLDOWN_BRANCH,
        setting=parent.setting,
        parent=parent.name,
        branch_from=start,
    )


def _int(value: Any) -> int | None:
    return None if value is None or _num(value) != _num(value) else int(_num(value))


def _opt(value: Any) -> float | None:
    return None if value is None else _num(value)


def load_sweep(sweep_dir: Path) -> Sweep:
    """Every run directory directly below `sweep_dir`; completed runs need a summary with a final loss. A run
    shared from another sweep is read from that sweep's folder; not completed there, it is excluded."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir}: no such sweep folder; pass runs/<sweep>/ or a CSV table")
    sweep = Sweep(name=sweep_dir.name, source=sweep_dir)
    markers = (*RUN_MARKERS, SHARED)
    run_dirs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and any((p / m).exists() for m in markers))
    if not run_dirs:
        raise ValueError(
            f"{sweep_dir}: no run directories (folders with config.yaml/status.json/metrics.jsonl)"
        )
    for folder in run_dirs:
        source, run_dir = _shared(folder)
        what = f"shared run {source} " if source else ""
        if source and not any((run_dir / m).exists() for m in RUN_MARKERS):
            sweep.excluded.append((folder.name, f"{what}not completed (not started: nothing at {run_dir})"))
            continue
        rec = read_run(run_dir)
        rec.name, rec.shared_from = folder.name, source
        if rec.state != "completed":
            sweep.excluded.append((rec.name, f"{what}not completed (state {rec.state})" if source
                                   else f"state {rec.state}"))  # fmt: skip
            if rec.val is not None:
                sweep.partial.append(rec)
        elif not (run_dir / "summary.json").exists():
            sweep.excluded.append((rec.name, f"{what}completed but summary.json is missing"))
        elif not math.isfinite(rec.final_val_loss):
            sweep.excluded.append((rec.name, f"{what}summary.json has no finite final_val_loss"))
        else:
            sweep.completed.append(rec)
            if source:
                sweep.notes.append(f"run {rec.name} is {source}, shared from that sweep (read in {run_dir})")
    return sweep


def _shared(folder: Path) -> tuple[str, Path]:
    """('<sweep>/<run>', its folder) when `folder` holds the launcher's shared.json, else ('', folder)."""
    path = folder / SHARED
    if not path.is_file():
        return "", folder
    record = _read_json(path)
    if not isinstance(record.get("run_dir"), str) or not record.get("shared_from"):
        raise ValueError(f"{path}: needs shared_from and run_dir; relaunch the sweep to rewrite it")
    return str(record["shared_from"]), Path(os.path.normpath(folder / record["run_dir"]))


def load_table(path: Path) -> Sweep:
    """A CSV with columns params,tokens,loss (optional flops, name/run, width, lr, events, gpu_hours).

    Rows sharing a `run` (or `name`) value form one run's curve (for the compute frontier); its last row
    is the run's final point. Without a flops column FLOPs are 6·params·tokens (noted in `sweep.notes`)."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err})") from err
    header = set(rows[0]) if rows else set()
    missing = {"params", "tokens", "loss"} - header
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need params,tokens,loss")
    sweep = Sweep(name=path.stem, source=path)
    if "flops" not in header:
        sweep.notes.append("FLOPs not in the table: taken as 6 x params x tokens")
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for i, row in enumerate(rows, start=2):
        key = row.get("run") or row.get("name") or f"row{i}"
        groups.setdefault(key, []).append((i, row))
    for key, items in groups.items():
        recs = [_table_record(path, i, row, key, "flops" in header) for i, row in items]
        last = recs[-1]
        last.val = Curve(
            step=np.arange(len(recs), dtype=float),
            tokens=np.array([r.tokens for r in recs]),
            events=np.array([r.events for r in recs]),
            flops=np.array([r.flops for r in recs]),
            loss=np.array([r.final_val_loss for r in recs]),
        )
        finite = last.val.loss[np.isfinite(last.val.loss)]
        last.best_val_loss = float(finite.min()) if finite.size else math.nan
        sweep.completed.append(last)
    return sweep


def _table_record(path: Path, line: int, row: dict[str, str], name: str, has_flops: bool) -> RunRecord:
    params, tokens, loss = _num(row.get("params")), _num(row.get("tokens")), _num(row.get("loss"))
    flops = _num(row.get("flops")) if has_flops else 6.0 * params * tokens
    return RunRecord(
        name=name,
        state="completed",
        model=row.get("model", "") or "",
        width=_int(row.get("width")),
        lr=_opt(row.get("lr") or None),
        params_total=params,
        params_non_embedding=params,
        tokens=tokens,
        events=_num(row.get("events")),
        flops=flops,
        final_val_loss=loss,
        best_val_loss=loss,
        gpu_hours=_num(row.get("gpu_hours")),
        flops_assumed=not has_flops,
    )


def load_source(source: Path) -> Sweep:
    """A sweep folder or a CSV table."""
    source = Path(source)
    if source.is_file() or source.suffix.lower() == ".csv":
        return load_table(source)
    return load_sweep(source)


def load_sources(sources: list[Path]) -> Sweep:
    """Several sweep folders or tables as one (runs named `<sweep>/<run>` when there are several)."""
    sweeps = [load_source(s) for s in sources]
    if len(sweeps) == 1:
        return sweeps[0]
    merged = Sweep(name="+".join(s.name for s in sweeps), source=Path(sources[0]))
    for sweep in sweeps:
        for rec in sweep.completed + sweep.partial:
            rec.name = f"{sweep.name}/{rec.name}"
            for branch in rec.branches:
                branch.name, branch.parent = f"{sweep.name}/{branch.name}", rec.name
        merged.completed += sweep.completed
        merged.partial += sweep.partial
        merged.excluded += [(f"{sweep.name}/{n}", r) for n, r in sweep.excluded]
        merged.notes += sweep.notes
    return merged


OBJECTIVE_ORDER = ("knnn", "next_token", "mpm", "contrastive", "supervised")


@dataclass(frozen=True)
class Variant:
    """What distinguishes one objective row from another."""

    objective: str
    mpm_target: str = ""  # mpm only
    direction: str = "causal"
    merge: str = ""  # a bidirectional model's merge, when not the default add

    @property
    def label(self) -> str:
        extra = [x for x in (self.mpm_target, self.merge and f"merge {self.merge}") if x]
        return self.objective + (f" ({', '.join(extra)})" if extra else "")

    @property
    def order(self) -> tuple:
        rank = OBJECTIVE_ORDER.index(self.objective) if self.objective in OBJECTIVE_ORDER else 99
        return rank, self.objective, self.direction != "causal", self.mpm_target, self.merge


def variant_of(cfg: dict[str, Any]) -> Variant:
    """The variant of a run config tree (defaults where a key is absent: knnn, tokens, causal, add)."""
    objective, model = cfg.get("objective") or {}, cfg.get("model") or {}
    name = str(objective.get("name", "knnn"))
    direction = str(model.get("direction", "causal"))
    merge = str(model.get("merge", "add"))
    return Variant(
        objective=name,
        mpm_target=str(objective.get("mpm_target", "tokens")) if name == "mpm" else "",
        direction=direction,
        merge=merge if direction == "bidirectional" and merge != "add" else "",
    )
