"""Fitting cores for the scaling laws: batched over bootstrap resamples, fitted in log space.

Single-variable law  L(x) = A·x^(−α) [+ E]:
  - without E it is a straight line in log-log space, solved in closed form (weighted least squares);
  - with E the residual log L − log(A·x^(−α) + E) is minimised by a batched Levenberg–Marquardt on
    θ = (a = log A, α, e = log E) with logsumexp, started from a profile over a grid of E values.
Joint law  L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, Approach 3, as re-examined by Besiroglu et al.
2024): Huber loss (δ = 1e-3) on log L − logsumexp(a − α log N, b − β log D, e), minimised by L-BFGS-B from the
best points of a grid of initialisations.

A bootstrap resample is a vector of multinomial counts over the points, used as weights: every resample shares
the same arrays, and the single-variable fits solve all resamples at once.

    >>> fit = fit_single(np.log(x), np.log(y), irreducible=True)
    >>> fit.params["alpha"], fit.converged
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

ALPHA_BOUNDS = (0.0, 5.0)
E_FLOOR_FRACTION = 1e-8  # E below this fraction of the smallest loss means "no irreducible term": a bound
HUBER_DELTA = 1e-3


@dataclass(kw_only=True)
class CoreFit:
    """Raw fit of one law, batched: arrays have a leading resample axis (size 1 for the point fit)."""

    theta: np.ndarray  # (B, k) in the log parameterisation
    sse: np.ndarray  # (B,) objective at the optimum
    converged: np.ndarray  # (B,) bool
    at_bound: list[list[str]] = field(default_factory=list)  # per resample, names of parameters at a bound
    message: str = ""


def _weighted_line(lx: np.ndarray, ly: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares line ly = c + m·lx for each row of weights w (B, n); returns (c, m)."""
    sw = w.sum(1)
    mx = (w * lx).sum(1) / sw
    my = (w * ly).sum(1) / sw
    dx = lx[None, :] - mx[:, None]
    sxx = (w * dx * dx).sum(1)
    sxy = (w * dx * (ly[None, :] - my[:, None])).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(sxx > 0, sxy / sxx, np.nan)
    return my - m * mx, m


def fit_pure_power(lx: np.ndarray, ly: np.ndarray, w: np.ndarray) -> CoreFit:
    """L = A·x^(−α): theta = (a, α) for every row of weights w (B, n)."""
    c, m = _weighted_line(lx, ly, w)
    theta = np.stack([c, -m], axis=1)  # (B, 2)
    resid = ly[None, :] - (c[:, None] + m[:, None] * lx[None, :])
    ok = np.isfinite(theta).all(1)
    return CoreFit(theta=theta, sse=(w * resid**2).sum(1), converged=ok, at_bound=[[] for _ in ok])


def _predict_with_e(theta: np.ndarray, lx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(A·x^(−α) + E) and the share s of the power-law term, both (B, n)."""
    t1 = theta[:, :1] - theta[:, 1:2] * lx[None, :]
    t2 = np.broadcast_to(theta[:, 2:3], t1.shape)
    pred = np.logaddexp(t1, t2)
    return pred, np.exp(t1 - pred)


def _init_with_e(lx: np.ndarray, ly: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Start values: profile E over fractions of the smallest loss, a line fit of log(L − E) for each."""
    y_min = np.exp(ly.min())
    best = np.full(w.shape[0], np.inf)
    theta = np.zeros((w.shape[0], 3))
    for frac in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98):
        e_val = max(frac * y_min, E_FLOOR_FRACTION * y_min * 10)
        c, m = _weighted_line(lx, np.log(np.exp(ly) - e_val), w)
        cand = np.stack([c, -m, np.full_like(c, np.log(e_val))], axis=1)
        pred, _ = _predict_with_e(cand, lx)
        sse = (w * (ly[None, :] - pred) ** 2).sum(1)
        better = np.isfinite(sse) & (sse < best) & (m < 0)
        theta[better], best[better] = cand[better], sse[better]
    return theta


def fit_power_with_e(lx: np.ndarray, ly: np.ndarray, w: np.ndarray, *, max_iter: int = 200) -> CoreFit:
    """L = A·x^(−α) + E by batched Levenberg–Marquardt on (a, α, e); w (B, n) bootstrap weights."""
    theta = _init_with_e(lx, ly, w)
    e_floor = np.log(E_FLOOR_FRACTION) + ly.min()
    lam = np.full(w.shape[0], 1e-3)
    pred, s = _predict_with_e(theta, lx)
    sse = (w * (ly - pred) ** 2).sum(1)
    done = np.zeros(w.shape[0], bool)
    for _ in range(max_iter):
        r = ly[None, :] - pred  # (B, n)
        jac = np.stack([s, -lx[None, :] * s, 1.0 - s], axis=2)  # (B, n, 3): d pred / d theta
        jtw = jac * w[:, :, None]
        hess = np.einsum("bni,bnj->bij", jtw, jac)  # (B, 3, 3)
        grad = np.einsum("bni,bn->bi", jtw, r)
        damp = hess + lam[:, None, None] * (
            np.eye(3) * (np.diagonal(hess, axis1=1, axis2=2)[:, :, None] + 1e-12)
        )
        step = np.linalg.solve(damp, grad[:, :, None])[:, :, 0]
        new = theta + np.where(done[:, None], 0.0, step)
        new[:, 1] = np.clip(new[:, 1], *ALPHA_BOUNDS)
        new[:, 2] = np.maximum(new[:, 2], e_floor)
        new_pred, new_s = _predict_with_e(new, lx)
        new_sse = (w * (ly - new_pred) ** 2).sum(1)
        accept = np.isfinite(new_sse) & (new_sse <= sse) & ~done
        rel = np.where(accept, (sse - new_sse) / np.maximum(sse, 1e-300), 1.0)
        theta[accept], pred[accept], s[accept] = new[accept], new_pred[accept], new_s[accept]
        small = (np.abs(step) < 1e-10 * (1 + np.abs(theta))).all(1)
        done |= (accept & (rel < 1e-12)) | small | (sse[:] < 1e-28)
        sse = np.where(accept, new_sse, sse)
        lam = np.where(accept, lam * 0.3, lam * 10.0)
        done |= lam > 1e12
        if done.all():
            break
    grad_norm = np.abs(np.einsum("bni,bn->bi", jac * w[:, :, None], ly[None, :] - pred)).max(1)
    converged = done & np.isfinite(theta).all(1) & (grad_norm < 1e-4 * (1 + sse))
    at_bound = []
    for row in theta:
        names = []
        if row[1] <= ALPHA_BOUNDS[0] + 1e-9 or row[1] >= ALPHA_BOUNDS[1] - 1e-9:
            names.append("alpha")
        if row[2] <= e_floor + 1e-6:
            names.append("E")
        at_bound.append(names)
    return CoreFit(theta=theta, sse=sse, converged=converged, at_bound=at_bound)


# ---------------------------------------------------------------------------------------------- joint law
JOINT_NAMES = ("a", "b", "e", "alpha", "beta")


def _joint_objective(
    theta: np.ndarray, ln: np.ndarray, ld: np.ndarray, ll: np.ndarray, w: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    """Weighted Huber loss of the log residual and its gradient (Besiroglu et al. 2024, eq. 2)."""
    a, b, e, alpha, beta = theta
    t1, t2 = a - alpha * ln, b - beta * ld  # (n,) each
    top = np.maximum(np.maximum(t1, t2), e)
    x1, x2, x3 = np.exp(t1 - top), np.exp(t2 - top), np.exp(e - top)
    total = x1 + x2 + x3
    pred = top + np.log(total)  # logsumexp of the three terms
    share = (x1 / total, x2 / total, x3 / total)  # d pred / d (a, b, e)
    r = pred - ll
    absr = np.abs(r)
    loss = np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta))
    psi = w * np.clip(r, -delta, delta)
    grad = np.array(
        [psi @ share[0], psi @ share[1], psi @ share[2], -(psi * ln) @ share[0], -(psi * ld) @ share[1]]
    )
    return float(w @ loss), grad


def joint_bounds(ll: np.ndarray) -> list[tuple[float, float]]:
    """Box for (a, b, e, α, β): wide enough to be inactive in a sound fit; hitting it is reported."""
    e_lo = float(np.log(E_FLOOR_FRACTION) + ll.min())
    return [(-30.0, 80.0), (-30.0, 80.0), (e_lo, float(ll.max()) + 1.0), ALPHA_BOUNDS, ALPHA_BOUNDS]


def joint_grid(ll: np.ndarray) -> np.ndarray:
    """Initialisation grid (Besiroglu et al. 2024 use a 4500-point grid of this kind): (G, 5)."""
    exps = np.array([0.1, 0.3, 0.5, 1.0, 1.5])
    logs = np.arange(0.0, 26.0, 5.0)
    es = float(ll.min()) + np.log([0.05, 0.3, 0.6, 0.9])
    grid = np.meshgrid(logs, logs, es, exps, exps, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def _grid_objective(
    grid: np.ndarray, ln: np.ndarray, ld: np.ndarray, ll: np.ndarray, w: np.ndarray, delta: float
) -> np.ndarray:
    """Huber objective at every grid point at once: (G,)."""
    t1 = grid[:, :1] - grid[:, 3:4] * ln[None, :]
    t2 = grid[:, 1:2] - grid[:, 4:5] * ld[None, :]
    pred = logsumexp(np.stack([t1, t2, np.broadcast_to(grid[:, 2:3], t1.shape)]), axis=0)  # (G, n)
    absr = np.abs(pred - ll[None, :])
    return (w * np.where(absr <= delta, 0.5 * absr**2, delta * (absr - 0.5 * delta))).sum(1)


def fit_joint_one(
    ln: np.ndarray,
    ld: np.ndarray,
    ll: np.ndarray,
    w: np.ndarray,
    *,
    starts: np.ndarray,
    delta: float = HUBER_DELTA,
) -> tuple[np.ndarray, float, bool, list[str], str]:
    """One joint fit with weights w (n,) from each start (S, 5); the best end point wins."""
    bounds = joint_bounds(ll)
    best = None
    for x0 in starts:
        res = minimize(
            _joint_objective,
            x0,
            args=(ln, ld, ll, w, delta),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
        )
        if best is None or res.fun < best.fun:
            best = res
    theta = best.x
    at_bound = [
        JOINT_NAMES[i] if i < 3 else ("alpha", "beta")[i - 3]
        for i, (lo, hi) in enumerate(bounds)
        if theta[i] <= lo + 1e-6 or theta[i] >= hi - 1e-6
    ]
    at_bound = ["E" if n == "e" else "A" if n == "a" else "B" if n == "b" else n for n in at_bound]
    # With a small Huber δ the objective is nearly L1; L-BFGS-B often ends in its line search at the optimum.
    # Count that as converged when the projected gradient is small relative to the objective scale.
    grad = _joint_objective(theta, ln, ld, ll, w, delta)[1]
    ok = bool(best.success) or bool(np.abs(grad).max() < 1e-6 * max(1.0, w.sum() * delta))
    return theta, float(best.fun), ok, at_bound, str(best.message)


def fit_joint_batch(
    ln: np.ndarray,
    ld: np.ndarray,
    ll: np.ndarray,
    w: np.ndarray,
    *,
    n_starts: int = 8,
    delta: float = HUBER_DELTA,
    warm: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CoreFit:
    """Joint fit for each row of weights w (B, n). Without `warm`, each row starts from its `n_starts` best
    grid points (the grid is scored in one vectorised pass); with `warm` (5,) (the point estimate, used for
    bootstrap rows, whose optimum lies near it) from that point alone."""
    grid = joint_grid(ll)
    thetas, sses, oks, bounds = [], [], [], []
    msg = ""
    for i, wi in enumerate(w):
        if warm is not None:
            starts = warm[None, :]
        else:
            starts = grid[np.argsort(_grid_objective(grid, ln, ld, ll, wi, delta))[:n_starts]]
        theta, sse, ok, at_bound, msg = fit_joint_one(ln, ld, ll, wi, starts=starts, delta=delta)
        thetas.append(theta)
        sses.append(sse)
        oks.append(ok)
        bounds.append(at_bound)
        if progress is not None:
            progress(i + 1, len(w))
    return CoreFit(
        theta=np.array(thetas), sse=np.array(sses), converged=np.array(oks), at_bound=bounds, message=msg
    )
