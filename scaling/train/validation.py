"""Validation figures: loss and per-coordinate error sums over the fixed held-out batches, their means, the
row of ratios to the lookup baselines that metrics.jsonl logs, and summary.json's block of them.

    >>> means = validation_means(validation_sums(predict, batches, objective))   # ranks add sums first
    >>> row = validation_row(means["loss"], means["coord_mse"], baseline, objective.coordinates)

Used by the trainer (every validation) and by `python -m scaling.train.ratios` (after the fact).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def validation_sums(predict: Any, batches: list[Any], objective: Any, metrics: bool = False) -> list[float]:
    """[event-weighted loss sum, events, valid slots, squared error per coordinate..., event-weighted sum of
    each of the objective's `metric_names` when `metrics`...] of `predict` (packed batch -> [T, out_dim]) over
    `batches`; sums, so ranks can add theirs before `validation_means` (given the same names). Baseline
    predictors are evaluated without metrics: their layout stays loss, events, slots, coordinates."""
    total, n, cnt, sq = 0.0, 0, 0.0, [0.0] * len(objective.coordinates)
    names = tuple(objective.metric_names) if metrics else ()
    msum = [0.0] * len(names)
    with torch.no_grad():
        for batch in batches:
            pred = predict(batch).reshape(batch.n_tokens, -1).float()
            total += float(objective.loss(pred, batch)) * batch.n_events
            n += batch.n_events
            s, c = objective.coordinate_errors(pred, batch.targets)
            sq, cnt = [a + float(b) for a, b in zip(sq, s, strict=True)], cnt + float(c)
            msum = metric_sums(objective, names, pred, batch, msum)
    return [total, n, cnt, *sq, *msum]


def metric_sums(
    objective: Any, names: tuple[str, ...], pred: Any, batch: Any, sums: list[float]
) -> list[float]:
    """`sums` plus this batch's objective metrics (`names`), weighted by its events."""
    if not names:
        return sums
    figures = objective.metrics(pred, batch)
    return [a + float(figures[k]) * batch.n_events for a, k in zip(sums, names, strict=True)]


def validation_means(sums: list[float], metric_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """{"loss": event-weighted mean loss, "coord_mse": per-coordinate MSE, "metrics": {name: event-weighted
    mean}} from `validation_sums` (the objective's `metric_names` are its last entries)."""
    k = len(metric_names)
    total, n, cnt, *rest = sums
    sq, msum = (rest[:-k], rest[-k:]) if k else (rest, [])
    return {
        "loss": total / n if n else float("nan"),
        "coord_mse": [v / cnt if cnt else float("nan") for v in sq],
        "metrics": {name: v / n if n else float("nan") for name, v in zip(metric_names, msum, strict=True)},
    }


def validation_row(
    val_loss: float,
    coord_mse: list[float],
    baseline: dict[str, dict[str, Any]],
    names: tuple[str, ...],
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The validation figures of one evaluation: the loss, its ratio to each lookup baseline's loss on the
    same events (`val_loss_ratio` for the layer table, `val_loss_ratio_<name>` for the others) and the
    per-coordinate MSE ratios to the layer table's. Near 1: the model learned no more than the table. The
    objective's own figures (`metrics`, e.g. masked top-1 accuracy) are logged as val_<name>."""

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 and np.isfinite(a) else float("nan")

    row: dict[str, Any] = {"val_loss": val_loss, **{f"val_{k}": v for k, v in (metrics or {}).items()}}
    first = next(iter(baseline), None)  # the objective's primary trivial predictor (layer for k-NNN)
    for name, base in baseline.items():
        row["val_loss_ratio" if name == first else f"val_loss_ratio_{name}"] = ratio(val_loss, base["loss"])
    if first is not None and names:  # classifiers and contrastive report no coordinates
        row["val_coord_ratio"] = {
            n: ratio(c, b) for n, c, b in zip(names, coord_mse, baseline[first]["coord_mse"], strict=True)
        }
    return row


def _finite_or_none(value: Any) -> Any:
    """NaN and inf become None (strict JSON readers reject bare NaN), recursively through dicts."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def ratio_summary(
    ratios: list[float], last_row: dict[str, Any], baseline: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """summary.json's baseline block: final and best val_loss_ratio, the last row's other ratios, and the
    baselines' own validation losses (so a reader can recompute every ratio)."""
    finite = [r for r in ratios if np.isfinite(r)]
    return {
        "final_val_loss_ratio": ratios[-1] if ratios and np.isfinite(ratios[-1]) else None,
        "best_val_loss_ratio": min(finite) if finite else None,
        "final_val_ratios": _finite_or_none(
            {k: v for k, v in last_row.items() if k.startswith("val_") and k != "val_loss"}
        ),
        "baseline_val_loss": _finite_or_none({name: b["loss"] for name, b in baseline.items()}),
    }


__all__ = ["ratio_summary", "validation_means", "validation_row", "validation_sums"]
