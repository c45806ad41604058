"""Serialisation: the order in which an event's spacepoints are fed to the sequence model.

Orders (config `serialization:`), all over normalised features `[e, r01, phi01, eta01]`:

- "raster": the paper's hierarchical raster scan. The (r, eta, phi) space is cut into boxes: r bins from
  the manifest's `r_edges` (two per TPC module, 6 bins), eta and phi bins from the frequency-balanced
  `eta_edges` / `phi_edges` (8 each), all converted to normalised units with the same ranges the `Normalizer`
  uses. Boxes are visited innermost-outward with r as the outermost loop, then phi, then eta
  (box centres increase in that lexicographic order); inside a box points go by increasing r, so each box
  is one contiguous run.
- "hilbert": position along a 3-D Hilbert curve through the normalised (r, phi, eta) cube, 10 bits per axis.
- "radial": increasing r.
- "random": a permutation drawn from `rng` (an ablation baseline; needs `rng`).

Every order is a stable sort (ties keep the input order), so the result is a deterministic permutation.

    >>> perm = serialize(feats, "raster", stats)
    >>> feats_sorted = feats[perm]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling.inputs.coordinates import ETA_COL, PHI_COL, R_COL, Normalizer
from scaling.inputs.hilbert import hilbert_index

SERIALIZATIONS: tuple[str, ...] = ("raster", "hilbert", "radial", "random")
HILBERT_BITS = 10  # 1024 cells per axis: finer than the detector resolution over the normalised range


def serialize(
    features01: np.ndarray,
    order: str,
    stats: dict[str, Any],
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Permutation (n,) int64 that puts the event's points in serialisation `order`."""
    if order not in SERIALIZATIONS:
        raise ValueError(f"serialization: unknown order {order!r}; choose one of {', '.join(SERIALIZATIONS)}")
    features01 = np.asarray(features01)
    if features01.ndim != 2 or features01.shape[1] != 4:
        raise ValueError(f"serialize: features must be (n, 4), got shape {features01.shape}")
    r = features01[:, R_COL]
    if order == "radial":
        return np.argsort(r, kind="stable").astype(np.int64)
    if order == "random":
        if rng is None:
            raise ValueError("serialization 'random' needs an rng (np.random.Generator) for reproducibility")
        return rng.permutation(features01.shape[0]).astype(np.int64)
    if order == "hilbert":
        scale = (1 << HILBERT_BITS) - 1
        cells = np.rint(np.clip(features01[:, [R_COL, PHI_COL, ETA_COL]], 0, 1) * scale).astype(np.int64)
        return np.lexsort((r, hilbert_index(cells, HILBERT_BITS))).astype(np.int64)
    box = raster_boxes(features01, stats)
    return np.lexsort((r, box)).astype(np.int64)


def raster_edges(stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The raster grid's (r, phi, eta) bin edges in normalised units, from the manifest stats."""
    norm = Normalizer.from_stats(stats)
    edges = []
    for name in ("r", "phi", "eta"):
        key = f"{name}_edges"
        if key not in stats or len(stats[key]) < 2:
            raise ValueError(f"manifest stats: {key} missing or with fewer than 2 edges; rewrite the dataset")
        e = norm.unit(name, stats[key])
        if np.any(np.diff(e) <= 0):
            raise ValueError(f"manifest stats: {key} must be strictly increasing")
        edges.append(e)
    return edges[0], edges[1], edges[2]


def raster_boxes(features01: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """Box number (n,) int64 of each point; numbers increase in visiting order (r, then phi, then eta)."""
    r_e, phi_e, eta_e = raster_edges(stats)
    # Interior edges only: points outside the outer edges fall in the first / last bin.
    r_bin = np.searchsorted(r_e[1:-1], features01[:, R_COL], side="right")
    phi_bin = np.searchsorted(phi_e[1:-1], features01[:, PHI_COL], side="right")
    eta_bin = np.searchsorted(eta_e[1:-1], features01[:, ETA_COL], side="right")
    n_phi, n_eta = phi_e.size - 1, eta_e.size - 1
    return ((r_bin * n_phi + phi_bin) * n_eta + eta_bin).astype(np.int64)
