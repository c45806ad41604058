"""Target scaling: per slot and coordinate standardisation, optionally after a robust asinh transform.

Raw k-NNN offsets differ by orders of magnitude between coordinates (in normalised units one centimetre of r
weighs ~7x one of r*phi) and have heavy tails (neighbours on other tracks), so an unscaled MSE is dominated by
a few coordinates and outliers. Two scalings, fitted on training events and stored with the run:

    standard   t' = (t - mean[s, c]) / std[s, c]
    robust     u  = asinh((t - median[s, c]) / (1.4826 MAD[s, c])),   t' = (u - mean_u[s, c]) / std_u[s, c]

(1.4826 MAD is the standard deviation of a Gaussian core; asinh is linear inside it and logarithmic in the
tails.) s is the neighbour slot, c the coordinate; masked entries stay 0 and never enter the statistics.

    >>> stats = fit_target_stats([(t, m) for t, m in raw], slots=4, n_coords=3, kind="robust")
    >>> scaled = scale_targets(target, mask, stats, n_coords=3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAD_TO_SIGMA = 1.4826
_FLOOR = 1e-12  # a coordinate with no spread (e.g. all equal) is left centred, not divided by zero


def _columns(target: np.ndarray, mask: np.ndarray, n_coords: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, S, C) targets and (n, S) mask."""
    mask = np.asarray(mask, dtype=bool).reshape(target.shape[0], -1)
    return np.asarray(target, dtype=np.float64).reshape(mask.shape[0], mask.shape[1], n_coords), mask


def fit_target_stats(
    parts: list[tuple[np.ndarray, np.ndarray]], slots: int, n_coords: int, kind: str
) -> dict[str, Any]:
    """Statistics of `kind` (standard | robust) per slot and coordinate from (target, mask) pairs."""
    if kind not in ("standard", "robust"):
        raise ValueError(f"objective.target_scaling: cannot fit {kind!r}; use standard or robust")
    cols = [_columns(t, m, n_coords) for t, m in parts]
    stats: dict[str, Any] = {"kind": kind, "slots": slots, "n_coords": n_coords}
    center = np.zeros((slots, n_coords))
    spread = np.ones((slots, n_coords))
    mean = np.zeros((slots, n_coords))
    std = np.ones((slots, n_coords))
    n_valid = 0
    for s in range(slots):
        vals = [t[m[:, s], s, :] for t, m in cols]
        v = np.concatenate(vals, axis=0) if vals else np.zeros((0, n_coords))  # (m, C)
        n_valid += v.shape[0]
        if v.shape[0] < 2:
            continue
        if kind == "robust":
            center[s] = np.median(v, axis=0)
            spread[s] = np.maximum(MAD_TO_SIGMA * np.median(np.abs(v - center[s]), axis=0), _FLOOR)
            v = np.arcsinh((v - center[s]) / spread[s])
        mean[s] = v.mean(axis=0)
        std[s] = np.maximum(v.std(axis=0), _FLOOR)
    if n_valid == 0:
        raise ValueError(
            "objective.target_scaling: the fitting events have no valid target; raise data.difficulty_events "
            "or check the train split"
        )
    stats.update(center=center.tolist(), spread=spread.tolist(), mean=mean.tolist(), std=std.tolist(),
                 n_valid=int(n_valid))  # fmt: skip
    return stats


def check_target_stats(stats: dict[str, Any], slots: int, n_coords: int) -> None:
    """A ValueError naming the problem when stored statistics do not fit this objective."""
    for key in ("kind", "center", "spread", "mean", "std"):
        if key not in stats:
            raise ValueError(f"target_stats.json: missing {key!r}; delete it so the trainer refits it")
    if np.asarray(stats["mean"]).shape != (slots, n_coords):
        raise ValueError(
            f"target_stats.json: statistics for shape {np.asarray(stats['mean']).shape}, the objective has "
            f"({slots}, {n_coords}); delete it so the trainer refits it"
        )


def scale_targets(target: np.ndarray, mask: np.ndarray, stats: dict[str, Any], n_coords: int) -> np.ndarray:
    """Scaled copy of `target` (same shape, float32); masked entries 0."""
    t, m = _columns(target, mask, n_coords)
    v = t
    if stats["kind"] == "robust":
        v = np.arcsinh((v - np.asarray(stats["center"])) / np.asarray(stats["spread"]))
    v = (v - np.asarray(stats["mean"])) / np.asarray(stats["std"])
    v = np.where(m[..., None], v, 0.0)
    return v.reshape(target.shape).astype(np.float32)


def unscale_targets(scaled: np.ndarray, stats: dict[str, Any], n_coords: int) -> np.ndarray:
    """Inverse of `scale_targets` on valid entries (n, S * C) -> raw target units."""
    slots = np.asarray(stats["mean"]).shape[0]
    v = np.asarray(scaled, dtype=np.float64).reshape(-1, slots, n_coords)
    v = v * np.asarray(stats["std"]) + np.asarray(stats["mean"])
    if stats["kind"] == "robust":
        v = np.sinh(v) * np.asarray(stats["spread"]) + np.asarray(stats["center"])
    return v.reshape(np.asarray(scaled).shape)
