"""The joint law L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, Approach 3; Besiroglu et al. 2024), with
the compute-optimal allocation under C = 6ND: N_opt ∝ C^(β/(α+β)), D_opt ∝ C^(α/(α+β)). Each completed run
gives one (N, D, L) point per budget checkpoint (the tokens seen and validation loss there), so one model-
scaling sweep already spans N and D; the bootstrap resamples runs, keeping a run's points together."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.bootstrap import Progress, goodness, resample_weights
from analysis.laws import cores
from analysis.laws.base import FitRequest, Law, completed_points, register
from analysis.laws.compute import branch_note
from analysis.laws.power import intervals, usable_theta
from analysis.result import LawFit, check_points
from analysis.runs import RunRecord, Sweep


def fit_joint_law(
    names: list[str],
    n: np.ndarray,
    d: np.ndarray,
    y: np.ndarray,
    *,
    loss_name: str,
    n_boot: int = 1000,
    seed: int = 0,
    delta: float = cores.HUBER_DELTA,
    groups: np.ndarray | None = None,
) -> LawFit:
    """L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022 Approach 3; Besiroglu et al. 2024).

    `groups[i]` is the run of point i (points of one run are resampled together); default: a run each."""
    n, d, y = (np.asarray(v, float) for v in (n, d, y))
    check_joint_points(names, n, d)
    check_points(names, {"params": n, "tokens": d, "loss": y}, 5)
    groups = np.arange(n.size) if groups is None else np.asarray(groups)
    ln, ld, ll = np.log(n), np.log(d), np.log(y)
    point = cores.fit_joint_batch(ln, ld, ll, np.ones((1, n.size)), delta=delta)
    theta = point.theta[0]
    boot_theta = np.empty((0, 5))
    if n_boot > 0:
        n_groups = int(groups.max()) + 1
        # a resample must identify 5 parameters: 6 distinct points, or 3 distinct runs of several points each
        # (asking all of a few runs to be present would leave only the original sample: a zero-width interval)
        distinct = min(6, n_groups) if n_groups == n.size else min(3, n_groups)
        w_runs = resample_weights(n_groups, n_boot, seed, min_distinct=distinct)
        w = w_runs[:, groups]  # (B, points): each point weighs as often as its run was drawn
        fit = cores.fit_joint_batch(
            ln, ld, ll, w, delta=delta, warm=theta, progress=Progress("bootstrap", n_boot)
        )
        boot_theta = usable_theta(fit)
    samples = _joint_params(boot_theta)
    params = {k: float(v[0]) for k, v in _joint_params(theta[None, :]).items()}
    pred = np.log(params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"])
    derived = {
        "compute_optimal": "C = 6 N D; N_opt = G (C/6)^a, D_opt = (C/6)^b / G",
        **{k: params.pop(k) for k in ("a", "b", "G")},
    }
    return LawFit(
        law="joint",
        formula="L(N, D) = E + A/N^alpha + B/D^beta",
        params=params,
        ci95=intervals(samples, len(names), 5),
        n_points=len(names),
        converged=bool(point.converged[0]),
        at_bound=point.at_bound[0],
        **goodness(ll, pred),
        x="params_non_embedding, tokens",
        loss=loss_name,
        n_bootstrap=n_boot,
        n_bootstrap_failed=int(np.isnan(boot_theta).any(1).sum()),
        derived=derived,
        selection=f"Huber delta {delta:g} on log loss; L-BFGS-B from the best of a grid of starts",
        boot={k: s.tolist() for k, s in samples.items()},
        points=[
            {"name": a, "params": float(b), "tokens": float(c), loss_name: float(e)}
            for a, b, c, e in zip(names, n, d, y, strict=True)
        ],
    )


JOINT_FIX = (
    "give runs with budget checkpoints (budget.checkpoint_fractions, e.g. [0.25, 0.5, 1.0]: a point each), "
    "runs of several sizes, or several sweep folders in one call (python -m analysis.fit runs/model_scaling/ "
    "runs/data_scaling/ --law joint)"
)


def check_joint_points(names: list[str], n: np.ndarray, d: np.ndarray) -> None:
    """The joint law's 5 parameters need >= 6 points spanning >= 2 model sizes and >= 2 token counts."""
    sizes, tokens = np.unique(n[np.isfinite(n)]).size, np.unique(d[np.isfinite(d)]).size
    if len(names) < 6 or sizes < 2 or tokens < 2:
        raise ValueError(
            f"{len(names)} (N, D) point(s) from {sizes} model size(s) and {tokens} token count(s): the joint "
            f"law has 5 parameters and needs at least 6 points, 2 sizes and 2 token counts; {JOINT_FIX}"
        )


def joint_points(runs: list[RunRecord], loss_key: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:  # fmt: skip
    """(names, N, D, loss, run index) with a point per budget checkpoint of each run that has them (its
    validation loss and tokens there), else the run's final point. A cooldown branch is its own point, in
    its parent's group; a run with branches keeps only its budget points at its final step (the others sit
    in the stable phase of its WSD schedule)."""
    names, n, d, y, groups = [], [], [], [], []
    index: dict[str, int] = {}
    for run in runs:
        size = run.params_non_embedding if math.isfinite(run.params_non_embedding) else run.params_total
        points = [p for p in run.budget_points if math.isfinite(p["loss"]) and math.isfinite(p["tokens"])]
        if run.branches:
            points = [p for p in points if p["step"] >= run.steps]
        if not points:
            points = [{"step": math.nan, "tokens": run.tokens, "loss": getattr(run, loss_key)}]
        for p in points:
            names.append(run.name if len(points) == 1 else f"{run.name}@{int(p['step'])}")
            n.append(size)
            d.append(p["tokens"])
            y.append(p["loss"])
            groups.append(index.setdefault(run.parent or run.name, len(index)))
    return names, np.array(n, float), np.array(d, float), np.array(y, float), np.array(groups)


def _joint_params(theta: np.ndarray) -> dict[str, np.ndarray]:
    """(a, b, e, α, β) rows into named parameters and the compute-optimal exponents a, b and coefficient G."""
    alpha, beta = theta[:, 3], theta[:, 4]
    big_a, big_b = np.exp(theta[:, 0]), np.exp(theta[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (alpha * big_a / (beta * big_b)) ** (1.0 / (alpha + beta))  # Hoffmann et al. 2022, eq. 4
        return {
            "E": np.exp(theta[:, 2]),
            "A": big_a,
            "B": big_b,
            "alpha": alpha,
            "beta": beta,
            "a": beta / (alpha + beta),
            "b": alpha / (alpha + beta),
            "G": g,
        }


@register("joint")
class JointLaw(Law):
    """L(N, D) over a point per budget checkpoint of every completed run (its final point if it has none)."""

    params = ("E", "A", "B", "alpha", "beta")
    x_label = "non-embedding parameters N"
    report_order = 2

    def supported(self, sweep: Sweep) -> bool:
        sizes = {r.params_non_embedding for r in sweep.completed}
        tokens = {r.tokens for r in sweep.completed}
        return len(sizes) >= 3 and len(tokens) >= 3 and len(sweep.completed) >= 8

    def fit(self, req: FitRequest) -> LawFit:
        runs = completed_points(req, self.name).runs
        branches = [b for b in req.sweep.branch_points if math.isfinite(getattr(b, req.loss_key))]
        names, n, d, y, groups = joint_points(runs + branches, req.loss_key)
        if len(names) > len(runs) + len(branches):
            req.notes.append(f"{len(names)} points from the budget checkpoints of {len(runs)} runs")
        if branches:
            req.notes.append(f"joint points include {branch_note(branches)}")
        fit = fit_joint_law(
            names, n, d, y, loss_name=req.loss_key, n_boot=req.n_boot, seed=req.seed, groups=groups
        )
        sources = {b.name: b.source for b in branches}
        for point in fit.points:
            point["source"] = sources.get(point["name"], "run")
        return fit

    def draw(self, ax: Any, sweep: Sweep, fit: LawFit) -> None:
        """Points coloured by tokens, and the fitted L(N) at each token count tried (6 at most, else 4)."""
        import matplotlib.pyplot as plt

        n = np.array([pt["params"] for pt in fit.points])
        d = np.array([pt["tokens"] for pt in fit.points])
        y = np.array([pt[fit.loss] for pt in fit.points])
        sc = ax.scatter(n, y, c=np.log10(d), cmap="plasma", s=30, zorder=3, label="runs")
        plt.colorbar(sc, ax=ax, label="log10 training tokens D")
        p, grid = fit.params, np.geomspace(n.min() / 1.5, n.max() * 1.5, 100)
        distinct = np.unique(d)
        levels = distinct if distinct.size <= 6 else np.geomspace(d.min(), d.max(), 4)  # a curve per D tried
        for tokens in levels:
            color = plt.get_cmap("plasma")(
                (np.log10(tokens) - np.log10(d.min())) / max(np.ptp(np.log10(d)), 1e-9)
            )
            ax.plot(
                grid, p["E"] + p["A"] / grid ** p["alpha"] + p["B"] / tokens ** p["beta"], color=color, lw=1.5
            )
        ax.plot(
            [],
            [],
            "k-",
            label=f"L(N, D) fit: α = {p['alpha']:.3f}, β = {p['beta']:.3f}"
            + ("" if fit.reliable else " (NOT RELIABLE)"),
        )
        ax.set_xlabel(self.axis_label(fit))
