"""The compute law: a power law through the compute frontier, the lower envelope of every run's validation
curve against cumulative FLOPs (C_min, FM4NPP Figure 4c; Kaplan et al. 2020 Figure 1). Its bootstrap
resamples whole runs (curves)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from analysis.bootstrap import Progress
from analysis.frontier import compute_frontier, frontier_resample
from analysis.laws.base import FitRequest, register, setting_of_most
from analysis.laws.power import (
    PowerLaw,
    _single_params,
    draw_law,
    fit_single_law,
    intervals,
    single_fit,
    usable_theta,
)
from analysis.result import LawFit
from analysis.runs import RunRecord, Sweep, one_setting


def fit_compute_law(
    runs: list[RunRecord], *, irreducible: str = "auto", n_boot: int = 1000, seed: int = 0, n_grid: int = 40
) -> LawFit:
    """Power law through the compute frontier; its bootstrap resamples whole runs (curves)."""
    front = compute_frontier(runs, n_grid=n_grid)
    names = [f"C={c:.3g}" for c in front.budgets]
    fit = fit_single_law(
        "compute",
        names,
        front.budgets,
        front.loss,
        x_name="flops",
        loss_name="frontier_val_loss",
        irreducible=irreducible,
        n_boot=0,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    use_e = bool(fit.irreducible)
    k = 3 if use_e else 2
    rows, progress = [], Progress("bootstrap", n_boot)
    for i in range(n_boot):
        budgets, loss = frontier_resample(front, rng)
        row = np.full(k, np.nan)
        if budgets.size >= k + 1 and np.ptp(np.log(loss)) > 0:
            core = single_fit(np.log(budgets), np.log(loss), np.ones((1, budgets.size)), use_e)
            row = usable_theta(core)[0]
        rows.append(row)
        progress(i + 1)
    theta = np.array(rows).reshape(n_boot, k)
    samples = _single_params(theta, use_e)
    fit.ci95 = intervals(samples, front.n_groups, k)
    fit.boot = {name: s.tolist() for name, s in samples.items()}
    fit.n_bootstrap, fit.n_bootstrap_failed = n_boot, int(np.isnan(theta).any(1).sum())
    fit.derived = {"optimal_runs": front.segments(), "n_runs": front.n_groups}
    n_branches = len(front.curves) - front.n_groups
    if n_branches:
        fit.derived["n_cooldown_branches"] = n_branches
    return fit


def branch_points(sweep: Sweep, loss: str) -> list[RunRecord]:
    """The sweep's cooldown-branch points (completed WSD cooldowns) with a curve of `loss`."""
    branches = [b for b in sweep.branch_points if b.val is not None]
    if "ratio" in loss:
        branches = [dataclasses.replace(b, val=b.val_ratio) for b in branches if b.val_ratio is not None]
    return branches


def branch_note(branches: list[RunRecord]) -> str:
    runs = len({b.parent for b in branches})
    return (f"{len(branches)} cooldown-branch point(s) of {runs} WSD run(s) (branches.jsonl: completed "
            "cooldowns, named <run>@cooldown<step>)")  # fmt: skip


@register("compute")
class ComputeLaw(PowerLaw):
    """L(C) through the frontier of every run's curve, unfinished runs included (their curves count)."""

    symbol, x_label = "C", "compute C [FLOPs]"
    report_order = 3

    def x_key(self, req: FitRequest) -> str:
        return "flops"

    def supported(self, sweep: Sweep) -> bool:
        return sum(r.val is not None for r in sweep.all_runs) >= 2

    def fit(self, req: FitRequest) -> LawFit:
        sweep = req.sweep
        runs, _ = setting_of_most(req, [r for r in sweep.all_runs if r.val is not None])
        if "ratio" in req.loss:  # the frontier of the ratio curves: the same runs, their val_loss_ratio rows
            runs = [dataclasses.replace(r, val=r.val_ratio) for r in runs if r.val_ratio is not None]
            if not runs:
                raise ValueError(f"{sweep.source}: no run logged val_loss_ratio; use --loss final")
        if sweep.partial:
            unfinished = len(sweep.partial)
            req.notes.append(f"frontier includes the partial curves of {unfinished} unfinished run(s)")
        settings = {r.setting for r in runs}
        branches = [b for b in branch_points(sweep, req.loss) if b.setting in settings]
        if branches:
            req.notes.append(f"frontier includes {branch_note(branches)}")
        return fit_compute_law(runs + branches, irreducible=req.irreducible, n_boot=req.n_boot, seed=req.seed)

    def draw(self, ax: Any, sweep: Sweep, fit: LawFit) -> None:
        """Every run's curve (coloured by size; dotted: unfinished), the frontier's points and the fit."""
        import matplotlib
        import matplotlib.pyplot as plt

        runs = one_setting([r for r in sweep.all_runs if r.val is not None])[0]
        sizes = np.array([r.params_non_embedding for r in runs], float)
        finite = np.isfinite(sizes).any()
        norm = matplotlib.colors.LogNorm(np.nanmin(sizes), np.nanmax(sizes)) if finite else None
        cmap = plt.get_cmap("viridis")
        for run, size in zip(runs, sizes, strict=True):
            color = cmap(norm(size)) if norm is not None and np.isfinite(size) else "grey"
            ax.plot(
                run.val.flops,
                run.val.loss,
                color=color,
                lw=1.2,
                alpha=0.8,
                ls="-" if run.state == "completed" else ":",
            )
        for i, branch in enumerate(branch_points(sweep, fit.loss)):  # completed WSD cooldowns: a point each
            size = branch.params_non_embedding
            color = cmap(norm(size)) if norm is not None and np.isfinite(size) else "grey"
            ax.plot(branch.val.flops, branch.val.loss, "o", mfc="none", color=color, ms=6,
                    label="cooldown branch" if i == 0 else None)  # fmt: skip
        x = np.array([pt["flops"] for pt in fit.points])
        ax.plot(x, [pt[fit.loss] for pt in fit.points], "k.", ms=5, label="frontier C_min (lower envelope)")
        draw_law(ax, fit, x)
        if norm is not None:
            plt.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="parameters N")
        ax.set_xlabel(self.axis_label(fit))
