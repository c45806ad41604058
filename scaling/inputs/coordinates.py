"""Spacepoint coordinates: Cartesian (E, x, y, z) -> cylindrical (E, r, phi, eta) -> model features.

    r = sqrt(x^2 + y^2),  phi = atan2(y, x),  eta = -ln tan(theta / 2) with theta = atan2(r, z)

(eta is computed as asinh(z / r), the same quantity without the tangent's cancellation near the beam).
The model sees `[e_std, r01, phi01, eta01]`: energy standardised (or ln(E / mean E) with energy="log"),
the three positions min-max normalised to
[0, 1] with the ranges of the dataset manifest's `stats` block (`scaling.data.schema.STATS_KEYS`), never
constants. r and eta are clipped to [0, 1] (the paper normalises eta over [-2, 2] and clips); phi01 spans one
full turn, so phi01 = 0 and phi01 = 1 are the same azimuth (distances in phi are taken modulo 1).

    >>> norm = Normalizer.from_stats(read_manifest(dataset)["stats"])
    >>> feats = norm.features(event.points)          # (n, 4) float32
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Features columns the model and the objectives agree on.
FEATURE_NAMES: tuple[str, ...] = ("energy", "r", "phi", "eta")
R_COL, PHI_COL, ETA_COL = 1, 2, 3
ENERGY_FEATURES = ("standard", "log")
_NEEDED_STATS = ("energy_mean", "energy_std", "r_min", "r_max", "eta_min", "eta_max", "phi_min", "phi_max")


def to_cylindrical(points: np.ndarray) -> np.ndarray:
    """(n, 4) [E, x, y, z] -> (n, 4) float64 [E, r, phi, eta].

    A point on the beam line (r = 0) gets eta = +-inf, clipped later by the normaliser
    (no TPC spacepoint lies there)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"points must have shape (n, 4) = E, x, y, z; got {points.shape}")
    p = points.astype(np.float64, copy=False)
    r = np.hypot(p[:, 1], p[:, 2])
    phi = np.arctan2(p[:, 2], p[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(p[:, 3] / r)
    eta = np.where(r > 0, eta, np.copysign(np.inf, p[:, 3]))
    return np.stack([p[:, 0], r, phi, eta], axis=1)


@dataclass(frozen=True, kw_only=True)
class Normalizer:
    """Maps raw spacepoints to model features with the ranges of one dataset's manifest statistics."""

    energy_mean: float
    energy_std: float
    r_min: float
    r_max: float
    phi_min: float
    phi_max: float
    eta_min: float
    eta_max: float
    stats: dict[str, Any]  # the full stats block (serialisation reads its bin edges)
    energy: str = "standard"  # energy feature: standard (E - mean) / std, or log ln(E / mean)

    @classmethod
    def from_stats(cls, stats: dict[str, Any], energy: str = "standard") -> Normalizer:
        """Build from `manifest["stats"]`; a missing or degenerate range is a ValueError naming the key."""
        missing = [k for k in _NEEDED_STATS if k not in stats]
        if missing:
            raise ValueError(
                f"manifest stats: missing key(s) {missing}; rewrite the dataset with the current "
                "`python -m scaling.data` so its manifest carries every stats key"
            )
        vals = {k: float(stats[k]) for k in _NEEDED_STATS}
        for lo, hi in (("r_min", "r_max"), ("eta_min", "eta_max"), ("phi_min", "phi_max")):
            if not vals[hi] > vals[lo]:
                raise ValueError(f"manifest stats: {hi}={vals[hi]} must exceed {lo}={vals[lo]}")
        if not vals["energy_std"] > 0:
            raise ValueError(f"manifest stats: energy_std={vals['energy_std']} must be positive")
        if energy not in ENERGY_FEATURES:
            raise ValueError(f"data.energy_feature: {energy!r} is not one of {', '.join(ENERGY_FEATURES)}")
        return cls(**vals, stats=dict(stats), energy=energy)

    def unit(self, name: str, values: np.ndarray | list[float]) -> np.ndarray:
        """Normalise raw values of coordinate `name` ("r", "phi", "eta") to [0, 1] units, unclipped."""
        lo, hi = {
            "r": (self.r_min, self.r_max),
            "phi": (self.phi_min, self.phi_max),
            "eta": (self.eta_min, self.eta_max),
        }[name]
        return (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)

    def features(self, points: np.ndarray) -> np.ndarray:
        """(n, 4) [E, x, y, z] -> (n, 4) float32 [e_std, r01, phi01, eta01]."""
        cyl = to_cylindrical(points)
        out = np.empty_like(cyl)
        if self.energy == "log":  # heavy-tailed deposits (Landau): a log keeps slow protons from dominating
            out[:, 0] = np.log(np.maximum(cyl[:, 0], 1e-6 * self.energy_mean) / self.energy_mean)
        else:
            out[:, 0] = (cyl[:, 0] - self.energy_mean) / self.energy_std
        out[:, R_COL] = np.clip(self.unit("r", cyl[:, 1]), 0.0, 1.0)
        out[:, PHI_COL] = np.clip(self.unit("phi", cyl[:, 2]), 0.0, 1.0)
        out[:, ETA_COL] = np.clip(self.unit("eta", cyl[:, 3]), 0.0, 1.0)
        return out.astype(np.float32)
