"""k next-nearest-neighbour (k-NNN) prediction, the FM4NPP pretraining objective.

For each spacepoint i (in serialised order) the targets are its k nearest spacepoints among those with
strictly larger r, ordered by distance (ties by serialised index). The model predicts them as 3k numbers.

Distance space: the normalised (r01, phi01, eta01) cube, Euclidean, with phi periodic: phi01 spans one full
turn, so the phi difference is wrapped into [-0.5, 0.5) before squaring.

Targets: by default the neighbours' offsets from point i, (dr, dphi wrapped, deta), per neighbour in that
order; offsets are small and centred, which conditions the regression far better than absolute positions
(the absolute (r, phi, eta) of the neighbours with `relative_targets: false`). Points with fewer than k
larger-r points have the missing slots masked; MSE is taken over the valid slots only.

Neighbour search: `scaling.objectives.neighbours` (an exact compiled grid search on the CPU, checked against
the O(n^2) reference `knnn_brute_force`; `knnn_indices_torch` for device-side targets).
"""

from __future__ import annotations

import numpy as np
import torch

from scaling.objectives.base import Objective, register
from scaling.objectives.neighbours import (
    brute_force_indices,
    gather_offsets,
    knnn_indices,
    knnn_indices_torch,
)

__all__ = [
    "KnnnObjective",
    "knnn_brute_force",
    "knnn_indices",
    "knnn_indices_torch",
    "knnn_neighbours",
    "offset_columns",
    "pair_offsets",
]


def pair_offsets(pos: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Offsets (n, k, 3) of neighbours idx (n, k) (-1 = none, zero offset) from each point, phi wrapped."""
    return np.stack(offset_columns(pos, idx), axis=-1)


def offset_columns(pos: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
    """The (dr, dphi, deta) offsets of `pair_offsets` as three (n, k) float64 arrays.

    Gathers one contiguous column at a time (far cheaper than gathering (n, k, 3) rows); dphi is wrapped
    into [-0.5, 0.5) as x - floor(x + 0.5). A missing neighbour points at the point itself: offset 0."""
    n = pos.shape[0]
    safe = np.where(idx >= 0, idx, np.arange(n)[:, None])
    cols = []
    for j in range(3):
        col = np.ascontiguousarray(pos[:, j], dtype=np.float64)
        off = col[safe]
        off -= col[:, None]
        cols.append(off)
    cols[1] -= np.floor(cols[1] + 0.5)
    return cols


def knnn_neighbours(pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) int64 (-1 = none) and distances (n, k) (inf = none) of the k nearest larger-r points.

    pos: (n, 3) normalised [r, phi, eta]."""
    pos = np.asarray(pos, dtype=np.float64)
    idx = knnn_indices(pos, k)
    dist = np.where(idx >= 0, np.linalg.norm(pair_offsets(pos, idx), axis=-1), np.inf)
    return idx, dist


def knnn_brute_force(pos: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """O(n^2) reference for `knnn_neighbours` (same distance, same tie order)."""
    pos = np.asarray(pos, dtype=np.float64)
    idx = brute_force_indices(pos, k, block)
    dist = np.where(idx >= 0, np.linalg.norm(pair_offsets(pos, idx), axis=-1), np.inf)
    return idx, dist


@register("knnn")
class KnnnObjective(Objective):
    """Predict the k next-nearest larger-r neighbours of every spacepoint."""

    @property
    def out_dim(self) -> int:
        return 3 * self.cfg.k

    def build_targets(self, features01_sorted: np.ndarray) -> dict[str, np.ndarray]:
        """{"target": (n, 3k) f32, "mask": (n, k) bool, "difficulty": () f32, "proxy": () f32}."""
        pos = np.asarray(features01_sorted, dtype=np.float64)[:, 1:4]
        if self.cfg.target_backend == "torch":
            device = torch.device(self.cfg.target_device)
            idx = knnn_indices_torch(torch.from_numpy(pos).to(device), self.cfg.k).cpu().numpy()
        else:
            idx = knnn_indices(pos, self.cfg.k)
        n, k = idx.shape
        target = np.empty((n, k, 3), dtype=np.float32)
        mask = np.empty((n, k), dtype=bool)
        sum_len, sum_sq, n_valid = gather_offsets(
            np.ascontiguousarray(pos), idx, bool(self.cfg.relative_targets), target, mask
        )
        # difficulty: mean k-NN distance; proxy: MSE of predicting zero offsets (the trivial predictor).
        difficulty = sum_len / n_valid if n_valid else 0.0
        proxy = sum_sq / (3 * n_valid) if n_valid else 0.0
        return {
            "target": target.reshape(n, 3 * k),
            "mask": mask,
            "difficulty": np.asarray(difficulty, dtype=np.float32),
            "proxy": np.asarray(proxy, dtype=np.float32),
        }

    def token_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.cfg.k
        mask = targets["mask"].to(pred.device)  # [T, k]
        diff = pred.view(-1, k, 3) - targets["target"].to(pred.device).view(-1, k, 3)  # [T, k, 3]
        sq = torch.where(mask, diff.square().sum(-1), 0.0).sum(-1)  # [T]
        return sq, mask.sum(-1).to(pred.dtype) * 3.0
