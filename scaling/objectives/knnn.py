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


def physical_scales(geometry: dict[str, float]) -> tuple[float, float, float]:
    """Centimetres per normalised unit of (r, phi, eta) at the detector's mid radius r_ref:
    s_r = r_max - r_min, s_phi = (phi_max - phi_min) r_ref (arc length), s_eta = (eta_max - eta_min) r_ref
    (dz = r cosh(eta) d(eta), so at eta = 0; wider at large |eta|). The search metric of `physical`."""
    r_ref = 0.5 * (geometry["r_min"] + geometry["r_max"])
    return (
        geometry["r_max"] - geometry["r_min"],
        (geometry["phi_max"] - geometry["phi_min"]) * r_ref,
        (geometry["eta_max"] - geometry["eta_min"]) * r_ref,
    )


def physical_search_positions(pos: np.ndarray, geometry: dict[str, float]) -> np.ndarray:
    """(n, 3) positions whose normalised-cube distance is the physical distance / s_phi: r and eta stretched
    by s_r / s_phi and s_eta / s_phi, phi kept in [0, 1] (the search's periodic coordinate)."""
    s_r, s_phi, s_eta = physical_scales(geometry)
    out = np.array(pos, dtype=np.float64, copy=True)
    out[:, 0] *= s_r / s_phi
    out[:, 2] *= s_eta / s_phi
    return out


def physical_offsets(pos: np.ndarray, idx: np.ndarray, geometry: dict[str, float]) -> np.ndarray:
    """(n, k, 3) float64 offsets (dr, r_i dphi, dz) in cm of neighbours idx (n, k) (-1: zero) from each point
    of normalised pos (n, 3) [r, phi, eta]; r_i is the point's own radius, dphi wrapped into [-pi, pi)."""
    g = geometry
    r = g["r_min"] + pos[:, 0] * (g["r_max"] - g["r_min"])
    eta = g["eta_min"] + pos[:, 2] * (g["eta_max"] - g["eta_min"])
    z = r * np.sinh(eta)
    dr, dphi, _ = offset_columns(pos, idx)  # normalised, dphi wrapped into [-0.5, 0.5)
    safe = np.where(idx >= 0, idx, np.arange(pos.shape[0])[:, None])
    return np.stack(
        [
            dr * (g["r_max"] - g["r_min"]),
            dphi * (g["phi_max"] - g["phi_min"]) * r[:, None],
            z[safe] - z[:, None],
        ],
        axis=-1,
    )


@register("knnn")
class KnnnObjective(Objective):
    """Predict the k next-nearest larger-r neighbours of every spacepoint."""

    causal_only = True  # the targets are later points in the serialised order

    @property
    def slots(self) -> int:
        return self.cfg.k

    @property
    def coordinates(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("dr", "rdphi", "dz") if self.cfg.metric == "physical" else ("dr", "dphi", "deta")

    def build_raw_targets(self, features01_sorted: np.ndarray) -> dict[str, np.ndarray]:
        """{"target": (n, 3k) f32, "mask": (n, k) bool, "difficulty": () f32, "proxy": () f32}."""
        pos = np.asarray(features01_sorted, dtype=np.float64)[:, 1:4]
        if self.cfg.metric == "physical":
            return self._physical_targets(pos)
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

    def _physical_targets(self, pos: np.ndarray) -> dict[str, np.ndarray]:
        """Neighbours by physical distance, offsets (dr, r dphi, dz) in cm (see `physical_offsets`)."""
        if self.geometry is None:
            raise ValueError("objective.metric=physical: bind_stats(manifest stats) must come first")
        if not self.cfg.relative_targets:
            raise ValueError(
                "objective.metric=physical predicts offsets; set objective.relative_targets=true "
                "(absolute targets are the paper's normalised setting)"
            )
        idx = knnn_indices(physical_search_positions(pos, self.geometry), self.cfg.k)
        off = physical_offsets(pos, idx, self.geometry)  # (n, k, 3) cm
        mask = idx >= 0
        valid = off[mask]  # (m, 3)
        difficulty = float(np.linalg.norm(valid, axis=1).mean()) if valid.size else 0.0
        proxy = float((valid**2).mean()) if valid.size else 0.0
        off[~mask] = 0.0
        return {
            "target": off.reshape(pos.shape[0], -1).astype(np.float32),
            "mask": mask,
            "difficulty": np.asarray(difficulty, dtype=np.float32),
            "proxy": np.asarray(proxy, dtype=np.float32),
        }
