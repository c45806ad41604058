"""Figures for scaling studies (FM4NPP Figure 4 style): log-log loss vs parameters, data and compute, with
the fitted law and its 95 % bootstrap band; every run's curve under the compute frontier; training curves.

Every figure is written as PNG and PDF with the Agg backend, so it works on a cluster node without a display.

    >>> paths = plot_law(sweep, fit, Path("report"))          # [.../law_model.png, .../law_model.pdf]
    >>> paths += plot_training_curves(sweep, Path("report"))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.runs import Sweep  # noqa: E402

if TYPE_CHECKING:
    from analysis.result import LawFit

STYLE = {
    "font.size": 12,
    "axes.labelsize": 13,
    "axes.titlesize": 13,
    "legend.fontsize": 10,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "figure.dpi": 120,
    "savefig.bbox": "tight",
}
AXIS = {
    "model": "non-embedding parameters N",
    "data": "training tokens D",
    "compute": "compute C [FLOPs]",
    "tokens": "training tokens D",
    "events": "training events",
}
LOSS_LABEL = "validation loss (objective units)"


def save_figure(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.pdf into `out_dir`; close the figure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths


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


def _draw_law(ax: plt.Axes, fit: LawFit, x: np.ndarray) -> None:
    grid = np.geomspace(x.min() / 1.5, x.max() * 1.5, 200)
    line, lo, hi = law_curve(fit, grid)
    ax.fill_between(grid, lo, hi, color="C3", alpha=0.2, lw=0, label="95 % bootstrap band")
    ax.plot(grid, line, color="C3", ls="--" if fit.reliable else ":", lw=2, label=_fit_label(fit))


def plot_law(sweep: Sweep, fit: LawFit, out_dir: Path) -> list[Path]:
    """The figure for one fitted law: points, fit, band (compute: also every run's curve and the frontier)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        if fit.law == "compute":
            _draw_compute(ax, sweep, fit)
        elif fit.law == "joint":
            _draw_joint(ax, fit)
        else:
            x = np.array([pt[fit.x] for pt in fit.points])
            y = np.array([pt[fit.loss] for pt in fit.points])
            ax.scatter(x, y, s=40, color="C0", zorder=3, label=f"runs ({fit.loss.replace('_', ' ')})")
            for pt, xi, yi in zip(fit.points, x, y, strict=True):
                ax.annotate(pt["name"], (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
            _draw_law(ax, fit, x)
            ax.set_xlabel(AXIS.get(fit.x, AXIS[fit.law]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ratio = "ratio" in fit.loss
        ax.set_ylabel("validation loss / lookup baseline's" if ratio else LOSS_LABEL)
        ax.set_title(f"{sweep.name}: {fit.law} scaling" + (" of the baseline ratio" if ratio else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best")
        return save_figure(fig, out_dir, f"law_{fit.law}" + ("_ratio" if ratio else ""))


def _draw_compute(ax: plt.Axes, sweep: Sweep, fit: LawFit) -> None:
    runs = [r for r in sweep.all_runs if r.val is not None]
    sizes = np.array([r.params_non_embedding for r in runs], float)
    norm = matplotlib.colors.LogNorm(np.nanmin(sizes), np.nanmax(sizes)) if np.isfinite(sizes).any() else None
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
    branches = [b for b in sweep.branch_points if b.val is not None]
    if "ratio" in fit.loss:
        branches = [dataclasses.replace(b, val=b.val_ratio) for b in branches if b.val_ratio is not None]
    for i, branch in enumerate(branches):  # completed cooldowns of WSD runs: one point each
        size = branch.params_non_embedding
        color = cmap(norm(size)) if norm is not None and np.isfinite(size) else "grey"
        ax.plot(branch.val.flops, branch.val.loss, "o", mfc="none", color=color, ms=6,
                label="cooldown branch" if i == 0 else None)  # fmt: skip
    x = np.array([pt["flops"] for pt in fit.points])
    ax.plot(x, [pt[fit.loss] for pt in fit.points], "k.", ms=5, label="frontier C_min (lower envelope)")
    _draw_law(ax, fit, x)
    if norm is not None:
        plt.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="parameters N")
    ax.set_xlabel(AXIS["compute"])


def _draw_joint(ax: plt.Axes, fit: LawFit) -> None:
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
    ax.set_xlabel(AXIS["model"])


def plot_training_curves(sweep: Sweep, out_dir: Path) -> list[Path]:
    """Training and validation loss against tokens for every run (dotted: unfinished runs)."""
    runs = sweep.all_runs
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for i, run in enumerate(runs):
            color, ls = f"C{i % 10}", "-" if run.state == "completed" else ":"
            if run.train is not None:
                ax.plot(run.train.tokens, run.train.loss, color=color, lw=0.8, alpha=0.5, ls=ls)
            if run.val is not None:
                ax.plot(
                    run.val.tokens,
                    run.val.loss,
                    color=color,
                    lw=1.8,
                    ls=ls,
                    marker=".",
                    label=f"{run.name} ({run.state})" if run.state != "completed" else run.name,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training tokens D")
        ax.set_ylabel("loss (thin: train, thick: validation)")
        ax.set_title(f"{sweep.name}: training curves")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", ncol=2 if len(runs) > 6 else 1)
        return save_figure(fig, out_dir, "training_curves")
