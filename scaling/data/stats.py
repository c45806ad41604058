"""Streaming dataset statistics for the manifest's `stats` block (keys: `schema.STATS_KEYS`).

The model reads normalisation ranges and serialisation bin edges from here, never from constants. Everything
is accumulated one event at a time: per-event float64 energy sums for the mean/std, running min/max, the
per-event point counts, and a bounded deterministic sample of spacepoints for the frequency-balanced eta/phi
quantile edges.

    >>> acc = StatsAccumulator()
    >>> for event in events:
    ...     acc.add(event.points)
    >>> stats = acc.finish()

The result does not depend on the order events are folded in, nor on how they are split between
accumulators that are merged afterwards: the sums are exactly rounded (`math.fsum`), the sample keeps the
points with the smallest keys, and a point's key is drawn from `default_rng([seed, event index])`. So ranks
that each write some shards (MPI data preparation) give byte for byte the statistics of one process.
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
        self._seed = int(seed)
        self._sums: list[float] = []  # per-event energy sum and sum of squares, fsum'ed in finish()
        self._sumsqs: list[float] = []
        self._lo = np.full(3, np.inf)  # r, z, eta
        self._hi = np.full(3, -np.inf)
        self._counts: list[int] = []
        # Bottom-k sampling by random key: a uniform sample of all points, independent of event sizes.
        self._keys = np.empty(0)
        self._eta = np.empty(0)
        self._phi = np.empty(0)
        self._threshold = 1.0

    def add(self, points: np.ndarray, *, event: int | None = None) -> None:
        """Fold one event's (n, 4) points in; `event` is its index in the split (default: events so far)."""
        index = len(self._counts) if event is None else int(event)
        self._counts.append(int(points.shape[0]))
        if points.shape[0] == 0:
            return
        energy = points[:, 0].astype(np.float64)
        self._sums.append(float(energy.sum()))
        self._sumsqs.append(float(np.square(energy).sum()))
        r, phi, eta = cylindrical(points)
        z = points[:, 3].astype(np.float64)
        for i, col in enumerate((r, z, eta)):
            self._lo[i] = min(self._lo[i], float(col.min()))
            self._hi[i] = max(self._hi[i], float(col.max()))
        keys = np.random.default_rng([self._seed, index]).random(energy.size)
        self._fold_sample(keys, eta, phi)

    def merge(self, other: StatsAccumulator) -> None:
        """Fold in another accumulator's events (same sample size and seed; disjoint event indices)."""
        if (other._k, other._seed) != (self._k, self._seed):
            raise ValueError("StatsAccumulator.merge: sample_points and seed must match")
        self._sums += other._sums
        self._sumsqs += other._sumsqs
        self._counts += other._counts
        self._lo = np.minimum(self._lo, other._lo)
        self._hi = np.maximum(self._hi, other._hi)
        self._fold_sample(other._keys, other._eta, other._phi)

    def compact(self) -> None:
        """Drop sampled points that can no longer be among the k kept (before sending it elsewhere)."""
        if self._keys.size > self._k:
            self._prune()

    def _fold_sample(self, keys: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> None:
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
        n_points = sum(self._counts)
        if n_points == 0:
            raise ValueError(
                "dataset statistics: the training split holds no spacepoints; write at least one event"
            )
        self.compact()
        mean = math.fsum(self._sums) / n_points
        std = math.sqrt(max(math.fsum(self._sumsqs) / n_points - mean * mean, 0.0))
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
