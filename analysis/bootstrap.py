"""Bootstrap over runs and the summary numbers every law reports (intervals, goodness of fit, AICc).

A resample draws runs with replacement (multinomial counts over the points), so the interval reflects
which runs happened to be trained, as in Besiroglu et al. 2024; counts enter the fits as weights.

    >>> weights = resample_weights(n_points=12, n_boot=1000, seed=0)   # (1000, 12)
    >>> lo, hi = percentile_interval(samples, expanded_tail(n_points=12, n_params=3))
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import stats

log = logging.getLogger(__name__)


def resample_weights(n_points: int, n_boot: int, seed: int, *, min_distinct: int = 1) -> np.ndarray:
    """Multinomial counts (n_boot, n_points); draws with fewer than `min_distinct` distinct runs are redrawn
    (such a resample cannot identify the law's parameters)."""
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_boot).astype(float)
    for _ in range(100):
        bad = (w > 0).sum(1) < min_distinct
        if not bad.any():
            break
        w[bad] = rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=int(bad.sum()))
    return w


def expanded_tail(n_points: int, n_params: int, level: float = 0.95) -> float:
    """Lower percentile (in %) of the expanded percentile interval (Hesterberg 2015, "What teachers should
    know about the bootstrap", section 4). The plain percentile interval is too narrow with few points (its
    spread uses divisor n, not n − k, and z, not t); the expansion uses Φ(−sqrt(n/(n−k))·t_{n−k}) in place
    of (1−level)/2. With n ≤ k the interval is the full bootstrap range."""
    if n_points - n_params < 1:
        return 0.0
    t = stats.t.ppf(0.5 + level / 2.0, n_points - n_params)
    return float(100.0 * stats.norm.sf(math.sqrt(n_points / (n_points - n_params)) * t))


def percentile_interval(samples: np.ndarray, tail_pct: float = 2.5) -> list[float]:
    """Interval between the `tail_pct` and 100 − `tail_pct` percentiles of the finite samples; [nan, nan] when
    there are none."""
    samples = np.asarray(samples, float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return [math.nan, math.nan]
    lo, hi = np.percentile(samples, [tail_pct, 100.0 - tail_pct])
    return [float(lo), float(hi)]


def goodness(log_y: np.ndarray, log_pred: np.ndarray) -> dict[str, float]:
    """R² and RMS of the residual, both in log space."""
    resid = log_y - log_pred
    ss_tot = float(((log_y - log_y.mean()) ** 2).sum())
    ss_res = float((resid**2).sum())
    return {
        "r2_log": 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan,
        "rms_log_residual": float(np.sqrt((resid**2).mean())),
    }


def aicc(sse: float, n_points: int, n_params: int) -> float:
    """Small-sample Akaike criterion for Gaussian residuals; +inf when n ≤ k + 1 (not estimable)."""
    if n_points <= n_params + 1 or sse <= 0:
        return math.inf if n_points <= n_params + 1 else -math.inf
    return (
        n_points * math.log(sse / n_points)
        + 2 * n_params
        + 2 * n_params * (n_params + 1) / (n_points - n_params - 1)
    )


class Progress:
    """Logs `what: i/n` about every 10 % of a long loop (bootstrap resamples)."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.next = what, total, max(1, total // 10)

    def __call__(self, done: int, total: int | None = None) -> None:
        if done >= self.next or done == self.total:
            log.info("%s: %d/%d (%d%%)", self.what, done, self.total, 100 * done // max(1, self.total))
            self.next = done + max(1, self.total // 10)
