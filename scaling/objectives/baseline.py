"""The trivial predictor of an objective: a lookup table of the mean target per radial bin (and eta bin).

A pretrained model that only matches this table has learned the detector's layout, not the events: the
validation loss over the table's loss on the same events (`val_loss_ratio`) is the figure that says how much
more it learned. Two tables are fitted on training events, in the objective's own target units (after any
target scaling):

    layer       mean target per radial bin x slot x coordinate (one bin per TPC layer, or 48 equal-count bins)
    layer_eta   the same per radial bin x eta bin (8 equal-count bins of eta), a finer lookup

Empty cells fall back to the coarser table, then to the global mean. Stored as baseline.json in the run.

    >>> tables = fit_lookup_baselines(samples, slots=obj.slots, n_coords=len(obj.coordinates))
    >>> pred = predict_lookup(tables["layer"], batch.features)      # [T, out_dim], like the model's
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scaling.inputs.coordinates import ETA_COL, R_COL

R_BINS, ETA_BINS = 48, 8
BASELINES = ("layer", "layer_eta")


def _edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges of at most n_bins bins: midway between the distinct values when there are no more than
    n_bins of them (discrete layer radii, to 1e-4 of the range), else equal-count quantiles."""
    if values.size == 0:
        return np.zeros(0)
    distinct = np.unique(np.round(values, 4))
    if distinct.size <= n_bins:
        return 0.5 * (distinct[1:] + distinct[:-1])
    return np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))


def _table(
    r_bin: np.ndarray, e_bin: np.ndarray, target: np.ndarray, mask: np.ndarray, n_r: int, n_e: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts (n_r, n_e, S, C) of valid targets (n, S, C) per cell."""
    cell = r_bin * n_e + e_bin  # (n,)
    _, s, c = target.shape
    w = mask[..., None].astype(np.float64)  # (n, S, 1)
    sums = np.zeros((n_r * n_e, s, c))
    cnts = np.zeros((n_r * n_e, s, 1))
    np.add.at(sums, cell, target * w)
    np.add.at(cnts, cell, w)
    return sums.reshape(n_r, n_e, s, c), cnts.reshape(n_r, n_e, s, 1)


def fit_lookup_baselines(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], slots: int, n_coords: int
) -> dict[str, dict[str, Any]]:
    """Both tables from (features (n, 4), target (n, S*C), mask (n, S)) of training events."""
    feats = np.concatenate([f for f, _, _ in parts]) if parts else np.zeros((0, 4))
    if feats.shape[0] == 0:
        raise ValueError("baseline: no training points to fit the lookup on; check data.train_split")
    target = np.concatenate([np.asarray(t, np.float64).reshape(-1, slots, n_coords) for _, t, _ in parts])
    mask = np.concatenate([np.asarray(m, bool).reshape(-1, slots) for _, _, m in parts])
    r_edges = _edges(feats[:, R_COL], R_BINS)
    e_edges = _edges(feats[:, ETA_COL], ETA_BINS)
    r_bin = np.searchsorted(r_edges, feats[:, R_COL], side="right")
    e_bin = np.searchsorted(e_edges, feats[:, ETA_COL], side="right")
    n_r, n_e = r_edges.size + 1, e_edges.size + 1
    sums, cnts = _table(r_bin, e_bin, target, mask, n_r, n_e)
    total = sums.sum((0, 1)) / np.maximum(cnts.sum((0, 1)), 1)  # (S, C) global mean
    layer_cnt = cnts.sum(1)  # (n_r, S, 1)
    layer = np.where(layer_cnt > 0, sums.sum(1) / np.maximum(layer_cnt, 1), total)  # (n_r, S, C)
    fine = np.where(cnts > 0, sums / np.maximum(cnts, 1), layer[:, None])  # (n_r, n_e, S, C)
    base = {"r_edges": _short(r_edges), "slots": slots, "n_coords": n_coords}
    return {
        "layer": {**base, "eta_edges": [], "table": _short(layer[:, None])},
        "layer_eta": {**base, "eta_edges": _short(e_edges), "table": _short(fine)},
    }


def _short(values: np.ndarray) -> list:
    """Nested lists of floats to 7 significant digits: the predictor computes in float32, and baseline.json
    (rewritten at every start of a run) stays a fraction of a checkpoint's size."""
    return np.vectorize(lambda v: float(f"{v:.7g}"), otypes=[float])(np.asarray(values, float)).tolist()


def check_baselines(tables: dict[str, Any], slots: int, n_coords: int) -> None:
    """A ValueError naming the problem when stored tables do not fit this objective."""
    for name in BASELINES:
        if name not in tables or "table" not in tables[name]:
            raise ValueError(f"baseline.json: missing the {name!r} table; delete it so the trainer refits it")
        shape = np.asarray(tables[name]["table"]).shape
        if shape[2:] != (slots, n_coords):
            raise ValueError(
                f"baseline.json: {name} table is for (slots, coords) {shape[2:]}, the objective has "
                f"({slots}, {n_coords}); delete it so the trainer refits it"
            )


class LookupPredictor:
    """A fitted table as a predictor of packed features [.., T, 4] -> [T, S*C] (torch, any device)."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.r_edges = torch.tensor(table["r_edges"], dtype=torch.float32)
        self.e_edges = torch.tensor(table["eta_edges"], dtype=torch.float32)
        t = torch.tensor(table["table"], dtype=torch.float32)  # (n_r, n_e, S, C)
        self.n_e = t.shape[1]
        self.flat = t.reshape(t.shape[0] * t.shape[1], -1)  # (n_r * n_e, S*C)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        f = features.reshape(-1, features.shape[-1]).float().cpu()  # [T, 4]
        r_bin = torch.bucketize(f[:, R_COL].contiguous(), self.r_edges, right=True)
        e_bin = torch.bucketize(f[:, ETA_COL].contiguous(), self.e_edges, right=True) if self.n_e > 1 else 0
        return self.flat[r_bin * self.n_e + e_bin].to(features.device)


class ConstantPredictor:
    """The same row for every token, [.., T, 4] -> [T, D]: the trivial predictor of objectives whose
    targets do not depend on where a point is (token or label marginals, a constant embedding)."""

    def __init__(self, row: list[float]) -> None:
        self.row = torch.tensor(row, dtype=torch.float32)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        t = features.reshape(-1, features.shape[-1]).shape[0]
        return self.row.to(features.device).expand(t, -1)


def predict_lookup(table: dict[str, Any], features: torch.Tensor) -> torch.Tensor:
    """[T, S*C] predictions of one table for packed features [.., T, 4]."""
    return LookupPredictor(table)(features)
