"""Streaming dataset statistics for the manifest's `stats` block (keys: `schema.STATS_KEYS`).

The model reads normalisation ranges and serialisation bin edges from here, never from constants. Everything
is accumulated one event at a time: sums in float64 for the energy mean/std, running min/max, the per-event
point counts, and a bounded deterministic sample of spacepoints for the frequency-balanced eta/phi quantile
edges.

    >>> acc = StatsAccumulator()
    >>> for event in events:
    ...     acc.add(event.points)
    >>> stats = acc.finish()
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# sPHENIX TPC module boundaries [cm]: inner edge ~30.3, module boundaries ~40.5 and ~57.7, outer edge ~77.6.
# Two radial serialisation bins per module (the paper's 6 x 8 x 8 grid).
TPC_MODULE_BOUNDS_CM: tuple[float, ...] = (30.3, 40.5, 57.7, 77.6)
N_ETA_BINS = 8
N_PHI_BINS = 8
SAMPLE_POINTS = 200_000  # spacepoints kept for quantiles: edge error ~ 1/sqrt(25k per bin), well below 1 %
SAMPLE_SEED = 20240917  # fixed so the same data always gives the same edges


def cylindrical(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r, phi, eta) of (n, 4) [E, x, y, z] points; eta = asinh(z / r) (r > 0 in a TPC)."""
    x = points[:, 1].astype(np.float64)
    y = points[:, 2].astype(np.float64)
    z = points[:, 3].astype(np.float64)
    r = np.hypot(x, y)
    phi = np.arctan2(y, x)
    eta = np.arcsinh(z / np.maximum(r, 1e-9))
    return r, phi, eta


class StatsAccumulator:
    """Accumulates `STATS_KEYS` over events without holding them; deterministic for a given event order."""

    def __init__(self, *, sample_points: int = SAMPLE_POINTS, seed: int = SAMPLE_SEED) -> None:
        self._k = int(sample_points)
        self._rng = np.random.default_rng(seed)
        self._n = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._lo = np.full(3, np.inf)  # r, z, eta
        self._hi = np.full(3, -np.inf)
        self._counts: list[int] = []
        # Bottom-k sampling by random key: a uniform sample of all points, independent of event sizes.
        self._keys = np.empty(0)
        self._eta = np.empty(0)
        self._phi = np.empty(0)
        self._threshold = 1.0

    def add(self, points: np.ndarray) -> None:
        """Fold one event's (n, 4) points in."""
        self._counts.append(int(points.shape[0]))
        if points.shape[0] == 0:
            return
        energy = points[:, 0].astype(np.float64)
        self._n += energy.size
        self._sum += float(energy.sum())
        self._sumsq += float(np.square(energy).sum())
        r, phi, eta = cylindrical(points)
        z = points[:, 3].astype(np.float64)
        for i, col in enumerate((r, z, eta)):
            self._lo[i] = min(self._lo[i], float(col.min()))
            self._hi[i] = max(self._hi[i], float(col.max()))
        keys = self._rng.random(energy.size)
        keep = keys < self._threshold
        self._keys = np.concatenate([self._keys, keys[keep]])
        self._eta = np.concatenate([self._eta, eta[keep]])
        self._phi = np.concatenate([self._phi, phi[keep]])
        if self._keys.size > 2 * self._k:
            self._prune()

    def _prune(self) -> None:
        order = np.argpartition(self._keys, self._k)[: self._k]
        self._threshold = float(np.partition(self._keys, self._k)[self._k])
        self._keys, self._eta, self._phi = self._keys[order], self._eta[order], self._phi[order]

    def finish(self, *, module_bounds_cm: tuple[float, ...] = TPC_MODULE_BOUNDS_CM) -> dict[str, Any]:
        """The `stats` block; raises ValueError when no spacepoint was seen."""
        if self._n == 0:
            raise ValueError(
                "dataset statistics: the training split holds no spacepoints; write at least one event"
            )
        if self._keys.size > self._k:
            self._prune()
        mean = self._sum / self._n
        std = math.sqrt(max(self._sumsq / self._n - mean * mean, 0.0))
        r_min, z_min, eta_min = (float(v) for v in self._lo)
        r_max, z_max, eta_max = (float(v) for v in self._hi)
        counts = np.asarray(self._counts)
        return {
            "energy_mean": mean,
            "energy_std": std if std > 0 else 1.0,
            "r_min": r_min,
            "r_max": r_max,
            "z_min": z_min,
            "z_max": z_max,
            "eta_min": eta_min,
            "eta_max": eta_max,
            "phi_min": -math.pi,
            "phi_max": math.pi,
            "r_edges": radial_edges(module_bounds_cm, r_min, r_max),
            "eta_edges": quantile_edges(self._eta, N_ETA_BINS, eta_min, eta_max),
            "phi_edges": quantile_edges(self._phi, N_PHI_BINS, -math.pi, math.pi),
            "points_per_event": {
                "min": int(counts.min()),
                "median": float(np.median(counts)),
                "max": int(counts.max()),
                "mean": float(counts.mean()),
            },
        }


def radial_edges(bounds: tuple[float, ...], r_min: float, r_max: float) -> list[float]:
    """Two bins per module between consecutive `bounds`, the outer edges widened to cover [r_min, r_max]."""
    edges: list[float] = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        edges += [lo, 0.5 * (lo + hi)]
    edges.append(bounds[-1])
    edges[0] = min(edges[0], r_min)
    edges[-1] = max(edges[-1], r_max)
    return [float(e) for e in edges]


def quantile_edges(sample: np.ndarray, n_bins: int, lo: float, hi: float) -> list[float]:
    """n_bins + 1 increasing edges holding equal shares of `sample`, the outer ones pinned to [lo, hi]."""
    if sample.size == 0:
        inner = np.linspace(lo, hi, n_bins + 1)[1:-1]
    else:
        inner = np.quantile(sample, np.arange(1, n_bins) / n_bins)
    edges = np.concatenate([[lo], inner, [hi]])
    # Degenerate samples (all points at one angle) would give repeated edges: keep them strictly increasing.
    span = max(hi - lo, 1e-6)
    for i in range(1, edges.size):
        edges[i] = max(edges[i], edges[i - 1] + 1e-6 * span)
    return [float(e) for e in edges]
