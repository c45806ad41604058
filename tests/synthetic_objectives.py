"""Fake run directories of an objective comparison (sweeps/objectives.yaml and its downstream sweeps), in the
formats the trainer, `python -m analysis.probe` and `python -m analysis.downstream` write: config.yaml with
the objective keys, summary.json with the final val_loss_ratio and uses_labels, probe.json and metrics.json.

    >>> write_objective_run(sweep, "knnn-tokens-causal-s0", objective="knnn", seed=0, ratio=0.8,
    ...                     probe={("log_pt", "backbone"): 0.4})
    >>> write_downstream_run(sweep / "downstream" / "pid-x", backbone=str(sweep / "knnn-tokens-causal-s0"),
    ...                      task="pid", regime="frozen", n_train_events=100, seed=0, value=0.6)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analysis.probe.targets import CLASSIFICATION_TARGETS, REGRESSION_TARGETS
from scaling.atomic import write_json_atomic, write_text_atomic
from tests.synthetic import TrueLaw, write_run

PROBE_REGRESSION = tuple(REGRESSION_TARGETS)  # what analysis.probe writes: its own target lists
PROBE_CLASSIFICATION = tuple(CLASSIFICATION_TARGETS)
PROBE_SOURCES = ("backbone", "random_init", "raw", "backbone_final_norm")


def probe_json(
    run: str, values: dict[tuple[str, str], float], *, subset_offset: float = 0.05
) -> dict[str, Any]:
    """A probe.json as analysis/probe/run.py writes it. `values[(target, source)]` is the non-noise figure
    (R² for regression, balanced accuracy for classification; noise has only all points); the all-point
    figure is that plus `subset_offset`, so a table reading the wrong subset is off by it. Targets and
    sources not given are 0.0."""

    def regression(target: str, subset: str, source: str) -> dict[str, Any]:
        r2 = values.get((target, source), 0.0) + (subset_offset if subset == "all" else 0.0)
        out = {"r2": r2, "alpha": 1.0, "n_eval_points": 500}
        return {**out, "sign_accuracy": 0.5} if target == "charge_sign" else out

    def classification(target: str, subset: str, source: str) -> dict[str, Any]:
        bal = values.get((target, source), 0.0) + (
            subset_offset if subset == "all" and target != "noise" else 0.0
        )
        return {"accuracy": min(1.0, bal + 0.1), "balanced_accuracy": bal, "alpha": 1.0, "n_eval_points": 500}

    results: dict[str, Any] = {}
    for target in PROBE_REGRESSION + PROBE_CLASSIFICATION:
        subsets = ("all",) if target == "noise" else ("all", "non_noise")
        make = regression if target in PROBE_REGRESSION else classification
        results[target] = {s: {src: make(target, s, src) for src in PROBE_SOURCES} for s in subsets}
        if target in PROBE_CLASSIFICATION:
            for s in subsets:
                results[target][s]["majority_class"] = {"accuracy": 0.6}
    return {
        "version": 1,
        "run": run,
        "checkpoint": {"folder": f"runs/objectives/{run}/checkpoints/step-00000600", "key": "bb-0"},
        "options": {"n_events": 300, "n_eval_events": 100, "train_split": "train", "eval_split": None},
        "dataset": "data/cpu_study",
        "train_split": "train",
        "eval_split": "val",
        "n_train_events": 300,
        "n_eval_events": 100,
        "n_train_points": 30000,
        "n_eval_points": 10000,
        "noise_fraction_eval": 0.39,
        "sources": {s: s for s in PROBE_SOURCES},
        "features": {
            "backbone": "prenorm",
            "random_init": "prenorm",
            "raw": "inputs",
            "backbone_final_norm": "final",
        },
        "targets": {t: "" for t in PROBE_REGRESSION + PROBE_CLASSIFICATION},
        "skipped": {},
        "results": results,
        "timing_s": {"features": 1.0, "fits": 1.0, "total": 2.0},
    }


def write_objective_run(
    sweep_dir: Path,
    name: str,
    *,
    objective: str,
    seed: int,
    ratio: float,
    mpm_target: str = "tokens",
    direction: str = "causal",
    width: int = 64,
    probe: dict[tuple[str, str], float] | None = None,
) -> Path:
    """One completed pretraining run: the synthetic run directory (tests/synthetic.py) with the objective
    keys in config.yaml, `final_val_loss_ratio` and `uses_labels` in summary.json, and probe.json if given."""
    run_dir = sweep_dir / name
    write_run(run_dir, width=width, steps=600, tokens_per_step=2e3, law=TrueLaw(), noise=0.0,
              rng=np.random.default_rng(seed))  # fmt: skip
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["objective"] = {"name": objective, "mpm_target": mpm_target, "metric": "normalised"}
    cfg["model"] = {**cfg["model"], "direction": direction, "merge": "add"}
    cfg["seed"] = seed
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(
        final_val_loss_ratio=ratio, best_val_loss_ratio=ratio, uses_labels=objective == "supervised"
    )
    write_json_atomic(run_dir / "summary.json", summary)
    if probe is not None:
        write_json_atomic(run_dir / "probe.json", probe_json(name, probe))
    return run_dir


def write_downstream_run(
    run_dir: Path,
    *,
    backbone: str,
    task: str,
    regime: str,
    n_train_events: int,
    seed: int,
    value: float,
    layers: str = "last",
) -> Path:
    """One completed adapter run's metrics.json as analysis/downstream/run.py writes it; `value` is the
    metric the objective table reads (macro recall for pid and noise, pooled ARI for tracking), the others
    are set apart from it so reading the wrong one shows."""
    if task == "tracking":
        metrics: dict[str, Any] = {
            "ari_pooled": value, "ari_event_mean": value - 0.1, "efficiency": 0.5, "purity": 0.5,
            "n_events": 200, "n_events_without_tracks": 0, "n_points": 80000, "n_true_tracks": 3000,
        }  # fmt: skip
    else:
        names = ["other", "pion", "kaon", "proton", "electron"] if task == "pid" else ["signal", "noise"]
        metrics = {
            "accuracy": min(1.0, value + 0.2), "macro_precision": value - 0.05, "macro_recall": value,
            "per_class": {n: {"precision": value, "recall": value, "support": 100} for n in names},
            "confusion": [[100 if i == j else 0 for j in names] for i in names], "class_names": names,
            "n_points": 100 * len(names),
        }  # fmt: skip
    result = {
        "task": task,
        "backbone": backbone,
        "regime": regime,
        "layers": layers,
        "standardize": True,
        "step": None,
        "feature_width": 64,
        "adapter_params": 20000,
        "trainable_params": 20000,
        "n_train_events": n_train_events,
        "n_eval_events": 200,
        "seed": seed,
        "metrics": metrics,
        "train": {
            "steps": 300,
            "events_seen": 2400,
            "wall_s": 10.0,
            "events_per_s": 240.0,
            "loss_first": 1.5,
            "loss_last": 0.5,
        },
        "feature_s": 1.0,
        "threads": 1,
    }
    write_json_atomic(run_dir / "metrics.json", result)
    write_json_atomic(run_dir / "status.json", {"state": "completed", "exit_code": 0})
    return run_dir
