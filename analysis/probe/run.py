"""Probe one run: frozen per-point features -> linear probes -> RUN_DIR/probe.json.

Feature sources, side by side on the same events and the same targets:
    backbone             the run's final checkpoint, residual stream before the final RMSNorm ("prenorm")
    random_init          the run's network initialised as the trainer does (its config, torch seed), untrained
    raw                  the model's inputs [e_std, r01, phi01, eta01] (the trainer's pipeline)
    backbone_final_norm  the checkpoint after the final RMSNorm (what the downstream adapters read)
Pre-norm is the main figure because the final norm lets the heavy-tailed energy column dominate and drops
position information (η to RMS 0.0066 before the norm, 0.062 after; README 'Probes').

Probes are fitted on the first `n_events` events of the train split (the last `val_fraction` of them choose
the regularisation) and scored on the first `n_eval_events` of a different split: held-out events. Each probe
is fitted and scored twice: on all points, and on non-noise points only (noise points are trivially
identifiable, so all-point figures flatter every source).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.downstream.features import extract_split
from analysis.downstream.run import iter_split, split_size
from analysis.downstream.sources import BackboneSource, RawSource, checkpoint_key
from analysis.probe.fit import accuracy, balanced_accuracy, fit_logistic, fit_ridge, r2_score
from analysis.probe.report import PROBE_FILE, SOURCE_LABELS, SOURCES
from analysis.probe.targets import (
    CLASSIFICATION_TARGETS,
    NEEDS_CHARGE,
    NEEDS_MOMENTUM,
    REGRESSION_TARGETS,
    event_targets,
)
from scaling.atomic import write_json_atomic
from scaling.data.schema import Event

log = logging.getLogger(__name__)
PROBE_VERSION = 1
SUBSETS = ("all", "non_noise")


@dataclass(kw_only=True)
class ProbeOptions:
    """What a probe reads; a probe.json written with other options (or another checkpoint) is stale."""

    n_events: int = 200  # training events (the last val_fraction of them choose the regularisation)
    n_eval_events: int = 100  # held-out events scored
    train_split: str = "train"
    eval_split: str | None = None  # None: the run's data.val_split
    dataset: str | None = None  # None: the run's data.dataset_dir
    val_fraction: float = 0.2
    max_points: int = 100_000  # points kept per split (a random subset, spread over events): bounds memory
    max_fit_points: int = 10000  # logistic fits use a random subset of this many training points
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_events < 5 or self.n_eval_events < 1:
            raise ValueError(f"--events must be >= 5 and --eval-events >= 1, got {self.n_events}, "
                             f"{self.n_eval_events}")  # fmt: skip
        if self.max_points < 100 or self.max_fit_points < 100:
            raise ValueError(f"--max-points must be >= 100, got {self.max_points}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")


def resolve_run(run_dir: Path) -> tuple[Path, Any]:
    """(final complete checkpoint folder, its TrainConfig); a run without one is a one-line ValueError."""
    import yaml

    from scaling.config import from_dict
    from scaling.train.checkpoint import resolve_checkpoint
    from scaling.train.config import TrainConfig

    try:
        folder = resolve_checkpoint(run_dir)
    except FileNotFoundError:
        raise ValueError(
            f"{run_dir}: no complete checkpoint under {run_dir / 'checkpoints'}; train the run first "
            "(python -m scaling.train) or give a run directory that has one"
        ) from None
    cfg_path = folder / "config.yaml"
    return folder, from_dict(TrainConfig, yaml.safe_load(cfg_path.read_text()), source=str(cfg_path))


def _take(events: Any, n: int) -> list[Event]:
    out = []
    for ev in events:
        if len(out) == n:
            break
        out.append(ev)
    return out


def load_events(dataset: str, split: str, n: int, what: str) -> list[Event]:
    """The first `n` events of `split` (all of them, said so, when it holds fewer)."""
    from scaling.data.shards import read_manifest

    manifest = read_manifest(dataset)
    if split not in manifest.get("splits", {}):
        have = ", ".join(sorted(manifest.get("splits", {}))) or "none"
        raise ValueError(f"{dataset}: no split {split!r} for the probe's {what} events (has {have}); "
                         f"pass --{what}-split with one of those")  # fmt: skip
    available = split_size(manifest, split, dataset)
    if available < n:
        log.info("split %r of %s holds %d events; the probe uses all of them (asked for %d)",
                 split, dataset, available, n)  # fmt: skip
    events = _take(iter_split(dataset, split), min(n, available))
    if not any((np.asarray(ev.track_id) >= 0).any() for ev in events):
        raise ValueError(f"split {split!r} of {dataset} carries no labels (every track_id is -1); "
                         f"pass --{what}-split with a labelled split (train/val/test)")  # fmt: skip
    return events


def select_points(events: list[Event], max_points: int, seed: int) -> list[np.ndarray]:
    """Per event, the sorted indices of the points kept: all, or a uniform random `max_points` in all."""
    sizes = np.array([ev.n_points for ev in events])
    if sizes.sum() <= max_points:
        return [np.arange(n) for n in sizes]
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(int(sizes.sum()), max_points, replace=False))
    bounds = np.cumsum(np.r_[0, sizes])
    return [keep[(keep >= lo) & (keep < hi)] - lo for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def extract_features(
    name: str, source: Any, events: list[Event], keep: list[np.ndarray], batch_events: int = 16
) -> np.ndarray:
    """Features of the kept points of `events`, in event then original point order (logs progress, ETA)."""
    t0, done, parts = time.perf_counter(), 0, []
    for lo in range(0, len(events), batch_events):
        batch = events[lo : lo + batch_events]
        feats = extract_split(source, batch, batch_events=batch_events).features
        parts += [f[k] for f, k in zip(feats, keep[lo : lo + batch_events], strict=True)]
        done += len(batch)
        if done == len(events) or lo // batch_events % 5 == 4:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            log.info("features %-20s %4d/%d events, %.0f events/s, ETA %.0f s", name, done, len(events),
                     rate, (len(events) - done) / rate)  # fmt: skip
    return np.concatenate(parts).astype(np.float32)


def stack_targets(events: list[Event], keep: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Targets of the kept points of `events`, concatenated; a target an event lacks is NaN on its points."""
    per_event = [event_targets(ev) for ev in events]
    keys = set().union(*per_event) if per_event else set()
    out = {}
    for k in keys:
        rows = [t.get(k, np.full(ev.n_points, np.nan)) for t, ev in zip(per_event, events, strict=True)]
        out[k] = np.concatenate([r[i] for r, i in zip(rows, keep, strict=True)])
    return out


def skipped_targets(train: dict[str, np.ndarray], where: str) -> dict[str, str]:
    """Targets the training split cannot supply, each with one line naming the missing truth and the fix."""
    notes = {}
    for key in REGRESSION_TARGETS:
        if key in train and np.isfinite(train[key]).sum() >= 10:
            continue
        if key in NEEDS_MOMENTUM:
            need = "track momenta (a track table with momentum)"
        elif key in NEEDS_CHARGE:
            need = "track charges (a track table with charge)"
        else:
            need = "tracks with two or more hits (track_id)"
        notes[key] = f"{where} has no {need}; probe a dataset with that truth (the built-in simulator has it)"
    return notes


def _score_regression(f_tr, y_tr, f_ev, y_ev, split_at, key) -> dict[str, float]:  # noqa: ANN001
    ok_tr, ok_ev = np.isfinite(y_tr), np.isfinite(y_ev)
    fit_rows, val_rows = ok_tr & (np.arange(len(y_tr)) < split_at), ok_tr & (np.arange(len(y_tr)) >= split_at)
    if fit_rows.sum() < 5 or val_rows.sum() < 2 or ok_ev.sum() < 2:
        return {"r2": float("nan"), "n_eval_points": int(ok_ev.sum())}
    fit = fit_ridge(f_tr[fit_rows], y_tr[fit_rows], f_tr[val_rows], y_tr[val_rows])
    pred = fit.predict(f_ev[ok_ev])
    out = {"r2": r2_score(y_ev[ok_ev], pred), "alpha": fit.alpha, "n_eval_points": int(ok_ev.sum())}
    if key == "charge_sign":
        out["sign_accuracy"] = accuracy(y_ev[ok_ev], np.where(pred >= 0, 1.0, -1.0))
    return out


def _score_classification(f_tr, c_tr, f_ev, c_ev, split_at, rng, max_points) -> dict[str, float]:  # noqa: ANN001
    rows = np.arange(len(c_tr))
    fit_rows, val_rows = rows[rows < split_at], rows[rows >= split_at]
    if len(fit_rows) > max_points:
        fit_rows = np.sort(rng.choice(fit_rows, max_points, replace=False))
    if len(np.unique(c_tr[fit_rows])) < 2 or len(val_rows) == 0 or len(c_ev) == 0:
        return {"accuracy": float("nan"), "balanced_accuracy": float("nan"), "n_eval_points": len(c_ev)}
    fit = fit_logistic(f_tr[fit_rows], c_tr[fit_rows], f_tr[val_rows], c_tr[val_rows])
    pred = fit.predict(f_ev)
    return {"accuracy": accuracy(c_ev, pred), "balanced_accuracy": balanced_accuracy(c_ev, pred),
            "alpha": fit.alpha, "n_eval_points": len(c_ev)}  # fmt: skip


def fit_probes(
    feats_tr: dict[str, np.ndarray],
    feats_ev: dict[str, np.ndarray],
    y_tr: dict[str, np.ndarray],
    y_ev: dict[str, np.ndarray],
    split_at: int,
    opts: ProbeOptions,
    skip: dict[str, str],
) -> dict[str, Any]:
    """results[target][subset][source] = metrics; `split_at` is the first training point of the val slice."""
    rng = np.random.default_rng(opts.seed)
    todo = [k for k in REGRESSION_TARGETS if k not in skip] + list(CLASSIFICATION_TARGETS)
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    for i, key in enumerate(todo):
        results[key] = {}
        for subset in SUBSETS if key != "noise" else ("all",):
            keep_tr = np.ones(len(y_tr["noise"]), bool) if subset == "all" else y_tr["noise"] == 0
            keep_ev = np.ones(len(y_ev["noise"]), bool) if subset == "all" else y_ev["noise"] == 0
            cut = int(keep_tr[:split_at].sum())
            results[key][subset] = {}
            for name in SOURCES:
                args = (feats_tr[name][keep_tr], y_tr[key][keep_tr], feats_ev[name][keep_ev],
                        y_ev[key][keep_ev], cut)  # fmt: skip
                if key in REGRESSION_TARGETS:
                    results[key][subset][name] = _score_regression(*args, key)
                else:
                    results[key][subset][name] = _score_classification(*args, rng, opts.max_fit_points)
            if key in CLASSIFICATION_TARGETS:  # the most frequent training class, for scale
                c_tr, c_ev = y_tr[key][keep_tr], y_ev[key][keep_ev]
                major = np.bincount(c_tr).argmax() if len(c_tr) else 0
                results[key][subset]["majority_class"] = {
                    "accuracy": accuracy(c_ev, np.full(len(c_ev), major))
                }
        elapsed = time.perf_counter() - t0
        log.info("probes %-22s %d/%d targets, ETA %.0f s", key, i + 1, len(todo),
                 elapsed / (i + 1) * (len(todo) - i - 1))  # fmt: skip
    return results


def build_sources(run_dir: Path, train_cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """The extracted sources; backbone_final_norm is derived from the backbone's pre-norm features."""
    return {
        "backbone": BackboneSource.load(run_dir, None, stats, layers="prenorm"),
        "random_init": BackboneSource.random_init(train_cfg, stats, layers="prenorm"),
        "raw": RawSource(stats, train_cfg.data),
    }


def all_features(sources: dict[str, Any], split: str, events: list[Event], keep: list[np.ndarray]) -> dict:
    """Features of every source (kept points); the final-norm features are the backbone's final RMSNorm
    applied to its pre-norm features (the norm acts per point), which saves a second forward pass."""
    import torch

    out = {k: extract_features(f"{k} ({split})", s, events, keep) for k, s in sources.items()}
    model = sources["backbone"].model
    with torch.no_grad():
        h = torch.from_numpy(out["backbone"]).to(next(model.parameters()).device)
        out["backbone_final_norm"] = model.norm_f(h).float().cpu().numpy()
    return out


def probe_run(run_dir: Path, opts: ProbeOptions) -> dict[str, Any]:
    """Probe one run directory and write RUN_DIR/probe.json; returns what it wrote."""
    from scaling.data.shards import read_manifest

    t0 = time.perf_counter()
    folder, train_cfg = resolve_run(run_dir)
    dataset = opts.dataset or str(train_cfg.data.dataset_dir)
    if not (Path(dataset) / "manifest.json").is_file():
        raise ValueError(f"{dataset}/manifest.json not found (data.dataset_dir of {folder / 'config.yaml'}); "
                         "pass --dataset DATASET_DIR")  # fmt: skip
    eval_split = opts.eval_split or str(train_cfg.data.val_split)
    if eval_split == opts.train_split:
        raise ValueError(f"--train-split and --eval-split are both {eval_split!r}; probes are scored on "
                         "held-out events of another split")  # fmt: skip
    train_events = load_events(dataset, opts.train_split, opts.n_events, "train")
    eval_events = load_events(dataset, eval_split, opts.n_eval_events, "eval")
    keep_tr = select_points(train_events, opts.max_points, opts.seed)
    keep_ev = select_points(eval_events, opts.max_points, opts.seed + 1)
    y_tr, y_ev = stack_targets(train_events, keep_tr), stack_targets(eval_events, keep_ev)
    skip = skipped_targets(y_tr, f"split {opts.train_split!r} of {dataset}")
    for key, note in skip.items():
        log.warning("probe target %s skipped: %s", key, note)
    n_fit_events = len(train_events) - max(1, round(opts.val_fraction * len(train_events)))
    split_at = int(sum(len(k) for k in keep_tr[:n_fit_events]))
    sources = build_sources(run_dir, train_cfg, read_manifest(dataset)["stats"])
    t_feat = time.perf_counter()
    feats_tr = all_features(sources, opts.train_split, train_events, keep_tr)
    feats_ev = all_features(sources, eval_split, eval_events, keep_ev)
    t_fit = time.perf_counter()
    results = fit_probes(feats_tr, feats_ev, y_tr, y_ev, split_at, opts, skip)
    out = {
        "version": PROBE_VERSION,
        "run": run_dir.name,
        "checkpoint": {"folder": str(folder), "key": checkpoint_key(run_dir, None)},
        "options": asdict(opts),
        "dataset": dataset,
        "train_split": opts.train_split,
        "eval_split": eval_split,
        "n_train_events": len(train_events),
        "n_eval_events": len(eval_events),
        "n_train_points": int(len(y_tr["noise"])),
        "n_eval_points": int(len(y_ev["noise"])),
        "noise_fraction_eval": float(np.mean(y_ev["noise"])) if len(y_ev["noise"]) else float("nan"),
        "sources": {k: SOURCE_LABELS[k] for k in SOURCES},
        "features": {
            "backbone": "prenorm",
            "random_init": "prenorm",
            "raw": "inputs",
            "backbone_final_norm": "final",
        },  # fmt: skip
        "targets": {**REGRESSION_TARGETS, **CLASSIFICATION_TARGETS},
        "skipped": skip,
        "results": results,
        "timing_s": {
            "features": t_fit - t_feat,
            "fits": time.perf_counter() - t_fit,
            "total": time.perf_counter() - t0,
        },  # fmt: skip
    }
    out = _finite(out)
    write_json_atomic(run_dir / PROBE_FILE, out)
    return out


def _finite(obj: Any) -> Any:
    """The same structure with NaN and infinities as None (plain JSON; the report shows them as –)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def is_up_to_date(run_dir: Path, opts: ProbeOptions) -> bool:
    """Whether RUN_DIR/probe.json was written for the current final checkpoint with these options."""
    path = run_dir / PROBE_FILE
    try:
        old = json.loads(path.read_text())
        return (old.get("version") == PROBE_VERSION and old.get("options") == asdict(opts)
                and old["checkpoint"]["key"] == checkpoint_key(run_dir, None))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return False


def runs_to_probe(path: Path) -> list[Path]:
    """[path] for a run directory; for a sweep folder, its completed runs that have a checkpoint."""
    if (path / "checkpoints").is_dir() or (path / "config.yaml").is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path}: no such run directory or sweep folder")
    runs = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        try:
            state = json.loads((child / "status.json").read_text()).get("state")
        except (OSError, ValueError, AttributeError):
            continue
        if state == "completed" and (child / "checkpoints").is_dir():
            runs.append(child)
    if not runs:
        raise ValueError(f"{path}: neither a run directory (no checkpoints/) nor a sweep folder with "
                         "completed runs; give runs/<sweep>/ or runs/<sweep>/<run>/")  # fmt: skip
    return runs
