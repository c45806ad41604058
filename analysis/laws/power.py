"""Single-variable power laws L(x) = A·x^(−α) [+ E]: the model-size and data laws, and the base of any other.

A new law of the loss against one RunRecord field is one definition:

    @register("width")
    class WidthLaw(PowerLaw):
        symbol, x_label = "W", "model width"

        def x_key(self, req: FitRequest) -> str:
            return "width"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.bootstrap import Progress, aicc, expanded_tail, goodness, percentile_interval, resample_weights
from analysis.laws import cores
from analysis.laws.base import FitRequest, Law, completed_points, register
from analysis.result import LawFit, check_points
from analysis.runs import Sweep

if TYPE_CHECKING:
    from analysis.laws.base import CompletedPoints


def _single_params(theta: np.ndarray, irreducible: bool) -> dict[str, np.ndarray]:
    out = {"A": np.exp(theta[:, 0]), "alpha": theta[:, 1]}
    if irreducible:
        out["E"] = np.exp(theta[:, 2])
    return out


def single_fit(lx: np.ndarray, ly: np.ndarray, w: np.ndarray, irreducible: bool) -> cores.CoreFit:
    """The core fit of A·x^(−α) [+ E] for each row of weights w (B, n)."""
    return cores.fit_power_with_e(lx, ly, w) if irreducible else cores.fit_pure_power(lx, ly, w)


def usable_theta(fit: cores.CoreFit) -> np.ndarray:
    """(B, k) fitted rows, NaN where the fit did not converge or ended at a bound (dropped from intervals)."""
    ok = fit.converged & np.array([not b for b in fit.at_bound], dtype=bool)
    return np.where(ok[:, None], fit.theta, np.nan)


def intervals(samples: dict[str, np.ndarray], n_points: int, n_params: int) -> dict[str, list[float]]:
    """95 % expanded percentile interval of each parameter's bootstrap samples."""
    tail = expanded_tail(n_points, n_params)
    return {name: percentile_interval(s, tail) for name, s in samples.items()}


def _choose_irreducible(lx: np.ndarray, ly: np.ndarray, mode: str) -> tuple[bool, str]:
    if mode in ("yes", "no"):
        return (
            mode == "yes",
            f"irreducible term {'forced' if mode == 'yes' else 'left out'} (--irreducible {mode})",
        )
    one = np.ones((1, lx.size))
    pure, with_e = cores.fit_pure_power(lx, ly, one), cores.fit_power_with_e(lx, ly, one)
    a_pure, a_e = aicc(float(pure.sse[0]), lx.size, 2), aicc(float(with_e.sse[0]), lx.size, 3)
    keep = bool(with_e.converged[0]) and not with_e.at_bound[0] and a_e < a_pure
    return keep, f"AICc without E {a_pure:.2f}, with E {a_e:.2f}: E {'kept' if keep else 'left out'}"


def fit_single_law(
    law: str,
    names: list[str],
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_name: str,
    loss_name: str,
    irreducible: str = "auto",
    n_boot: int = 1000,
    seed: int = 0,
) -> LawFit:
    """L = A·x^(−α) [+ E] with bootstrap intervals over the points (runs); `law` names a registered
    PowerLaw (its symbol writes the formula)."""
    from analysis.laws.base import REGISTRY

    definition = REGISTRY.lookup(law)
    x, y = np.asarray(x, float), np.asarray(y, float)
    check_points(names, {x_name: x, loss_name: y}, 3 if irreducible == "yes" else 2)
    lx, ly = np.log(x), np.log(y)
    use_e, selection = _choose_irreducible(lx, ly, irreducible)
    point = single_fit(lx, ly, np.ones((1, lx.size)), use_e)
    params = {k: float(v[0]) for k, v in _single_params(point.theta, use_e).items()}
    k = 3 if use_e else 2
    samples, n_failed = _bootstrap_single(lx, ly, use_e, n_boot, seed, min_distinct=k)
    pred = np.log(params["A"] * x ** -params["alpha"] + params.get("E", 0.0))
    return LawFit(
        law=law,
        formula=definition.formula(use_e),
        params=params,
        ci95=intervals(samples, len(names), k),
        n_points=len(names),
        converged=bool(point.converged[0]),
        at_bound=point.at_bound[0],
        **goodness(ly, pred),
        x=x_name,
        loss=loss_name,
        irreducible=use_e,
        selection=selection,
        n_bootstrap=n_boot,
        n_bootstrap_failed=n_failed,
        boot={n: s.tolist() for n, s in samples.items()},
        points=[
            {"name": n, x_name: float(a), loss_name: float(b)} for n, a, b in zip(names, x, y, strict=True)
        ],
    )


def _bootstrap_single(
    lx: np.ndarray, ly: np.ndarray, use_e: bool, n_boot: int, seed: int, min_distinct: int
) -> tuple[dict[str, np.ndarray], int]:
    if n_boot <= 0:
        return {}, 0
    w = resample_weights(lx.size, n_boot, seed, min_distinct=min_distinct)
    progress = Progress("bootstrap", n_boot)
    parts = []
    for chunk in np.array_split(np.arange(n_boot), min(10, n_boot)):  # ~10 % chunks for progress output
        parts.append(usable_theta(single_fit(lx, ly, w[chunk], use_e)))
        progress(int(chunk[-1]) + 1)
    theta = np.concatenate(parts)
    failed = int(np.isnan(theta).any(1).sum())
    return _single_params(theta, use_e), failed


def law_curve(fit: LawFit, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, band low, band high) of a single-variable law on `grid`; the band is pointwise 2.5–97.5 %."""
    p = fit.params
    line = p["A"] * grid ** -p["alpha"] + p.get("E", 0.0)
    boot = fit.boot
    if not boot.get("alpha"):
        return line, line, line
    a, alpha = np.array(boot["A"])[:, None], np.array(boot["alpha"])[:, None]
    e = np.array(boot["E"])[:, None] if "E" in boot else 0.0
    curves = a * grid[None, :] ** -alpha + e  # (B, G)
    curves = curves[np.isfinite(curves).all(1)]
    if curves.size == 0:
        return line, line, line
    lo, hi = np.percentile(curves, [2.5, 97.5], axis=0)
    return line, lo, hi


def _fit_label(fit: LawFit) -> str:
    lo, hi = fit.ci95.get("alpha", [np.nan, np.nan])
    label = f"fit: α = {fit.params['alpha']:.3f} [{lo:.3f}, {hi:.3f}]"
    if "E" in fit.params:
        label += f", E = {fit.params['E']:.3g}"
    return label if fit.reliable else label + " (NOT RELIABLE)"


def draw_law(ax: Any, fit: LawFit, x: np.ndarray) -> None:
    """The fitted curve of a single-variable law and its 95 % bootstrap band over the span of `x`."""
    grid = np.geomspace(x.min() / 1.5, x.max() * 1.5, 200)
    line, lo, hi = law_curve(fit, grid)
    ax.fill_between(grid, lo, hi, color="C3", alpha=0.2, lw=0, label="95 % bootstrap band")
    ax.plot(grid, line, color="C3", ls="--" if fit.reliable else ":", lw=2, label=_fit_label(fit))


class PowerLaw(Law):
    """L(x) = A·x^(−α) [+ E] over one point per completed run: x is the RunRecord field `x_key`, and where
    several runs share an x value (an LR sweep) the lowest-loss one is kept."""

    symbol = "x"  # the variable in the formula
    params = ("A", "alpha", "E")  # E only where the irreducible term is kept

    def formula(self, irreducible: bool) -> str:
        sym = self.symbol
        return f"L({sym}) = A*{sym}^-alpha" + (" + E" if irreducible else "")

    def x_key(self, req: FitRequest) -> str:
        """The RunRecord field on the x axis (also the points' key in the fit)."""
        raise NotImplementedError

    def x_values(self, points: CompletedPoints, req: FitRequest) -> np.ndarray:
        return np.array([getattr(r, self.x_key(req)) for r in points.runs], float)

    def fit(self, req: FitRequest) -> LawFit:
        points = completed_points(req, self.name, one_per=self.x_key(req))
        return fit_single_law(
            self.name,
            points.names,
            self.x_values(points, req),
            points.loss,
            x_name=self.x_key(req),
            loss_name=req.loss_key,
            irreducible=req.irreducible,
            n_boot=req.n_boot,
            seed=req.seed,
        )

    def draw(self, ax: Any, sweep: Sweep, fit: LawFit) -> None:
        x = np.array([pt[fit.x] for pt in fit.points])
        y = np.array([pt[fit.loss] for pt in fit.points])
        ax.scatter(x, y, s=40, color="C0", zorder=3, label=f"runs ({fit.loss.replace('_', ' ')})")
        for pt, xi, yi in zip(fit.points, x, y, strict=True):
            ax.annotate(pt["name"], (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        draw_law(ax, fit, x)
        ax.set_xlabel(self.axis_label(fit))


@register("model")
class ModelLaw(PowerLaw):
    """L(N) over non-embedding parameters (the total where a run did not record them)."""

    symbol, x_label = "N", "non-embedding parameters N"
    report_order, ratio_variant = 0, True

    def x_key(self, req: FitRequest) -> str:
        return "params_non_embedding"

    def x_values(self, points: CompletedPoints, req: FitRequest) -> np.ndarray:
        return points.params

    def supported(self, sweep: Sweep) -> bool:
        return len({r.params_non_embedding for r in sweep.completed}) >= 3


@register("data")
class DataLaw(PowerLaw):
    """L(D) over training tokens (or events: --x-data events)."""

    symbol, x_label = "D", "training tokens D"
    report_order, ratio_variant = 1, True
    labels = {"tokens": "training tokens D", "events": "training events"}

    def x_key(self, req: FitRequest) -> str:
        return req.x_data

    def axis_label(self, fit: LawFit) -> str:
        return self.labels.get(fit.x, self.x_label)

    def supported(self, sweep: Sweep) -> bool:
        return len({r.tokens for r in sweep.completed}) >= 3
