"""Loss rescaling by event difficulty (FM4NPP appendix B.7).

Sparse events (large mean distance between a point and its k-NN targets) have larger regression errors, so an
unweighted batch mean is dominated by them. Events are binned by their difficulty (the mean k-NN distance, a
number the target builder already has); each bin gets the weight 1 / (mean loss proxy of the bin), where the
proxy is the loss of the trivial predictor (predicting a zero offset: the mean squared target), fitted once on
a sample of training events. Weights are normalised to mean 1 over that sample so the loss keeps its scale.
The batch loss is then mean_e(w_e * MSE_e).

The fitted table is a small JSON-able dict the trainer saves beside its checkpoints:
    {"method": "inverse_mean_proxy", "edges": [...n_bins+1], "weights": [...n_bins], "n_events": int}
"""

from __future__ import annotations

from typing import Any

import numpy as np

METHOD = "inverse_mean_proxy"


def fit_difficulty_table(difficulty: np.ndarray, proxy: np.ndarray, n_bins: int) -> dict[str, Any]:
    """Per-bin weights from per-event (difficulty, loss proxy) pairs; events without targets are ignored."""
    difficulty = np.asarray(difficulty, dtype=np.float64)
    proxy = np.asarray(proxy, dtype=np.float64)
    keep = np.isfinite(difficulty) & np.isfinite(proxy) & (proxy > 0)
    if keep.sum() < n_bins:
        raise ValueError(
            f"fit_difficulty: {int(keep.sum())} events with targets, need at least difficulty_bins={n_bins}; "
            "fit on more training events or lower objective.difficulty_bins"
        )
    d, p = difficulty[keep], proxy[keep]
    # Equal-frequency bins: every weight is estimated from the same number of events.
    edges = np.unique(np.quantile(d, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:
        edges = np.array([d[0], d[0] + 1e-12])
    bins = _bin_of(edges, d)
    n_b = edges.size - 1
    mean_proxy = np.array([p[bins == b].mean() if np.any(bins == b) else np.nan for b in range(n_b)])
    weights = 1.0 / mean_proxy
    weights = np.where(np.isfinite(weights), weights, np.nanmax(weights))
    weights /= weights[bins].mean()  # mean weight over the fitting events = 1
    return {
        "method": METHOD,
        "edges": [float(e) for e in edges],
        "weights": [float(w) for w in weights],
        "n_events": int(keep.sum()),
    }


def check_difficulty_table(table: dict[str, Any]) -> None:
    """ValueError naming the field when a saved table is malformed."""
    for key in ("edges", "weights"):
        if key not in table:
            raise ValueError(f"difficulty table: missing {key!r}; refit with Objective.fit_difficulty")
    if len(table["edges"]) != len(table["weights"]) + 1:
        raise ValueError("difficulty table: needs len(edges) == len(weights) + 1; refit it")
    if not all(np.isfinite(table["weights"])) or min(table["weights"]) <= 0:
        raise ValueError("difficulty table: weights must be finite and positive; refit it")


def difficulty_weight(table: dict[str, Any] | None, difficulty: float) -> float:
    """Weight of one event of the given difficulty (1.0 without a table); outside the edges: end bins."""
    if table is None:
        return 1.0
    edges = np.asarray(table["edges"], dtype=np.float64)
    return float(table["weights"][int(_bin_of(edges, np.asarray([difficulty]))[0])])


def _bin_of(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, edges.size - 2)
