"""Figures for scaling studies (FM4NPP Figure 4 style): log-log loss vs parameters, data and compute, with
the fitted law and its 95 % bootstrap band; every run's curve under the compute frontier; training curves.

Every figure is written as PNG and PDF with the Agg backend, so it works on a cluster node without a display.

    >>> paths = plot_law(sweep, fit, Path("report"))          # [.../law_model.png, .../law_model.pdf]
    >>> paths += plot_training_curves(sweep, Path("report"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.laws import REGISTRY  # noqa: E402
from analysis.laws.power import law_curve  # noqa: E402, F401  (re-exported)
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


def plot_law(sweep: Sweep, fit: LawFit, out_dir: Path) -> list[Path]:
    """The figure for one fitted law: the law draws its points, fit and band (compute: also every run's curve
    and the frontier; analysis/laws/); log axes, the loss label and the title are shared."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        REGISTRY.lookup(fit.law).draw(ax, sweep, fit)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ratio = "ratio" in fit.loss
        ax.set_ylabel("validation loss / lookup baseline's" if ratio else LOSS_LABEL)
        ax.set_title(f"{sweep.name}: {fit.law} scaling" + (" of the baseline ratio" if ratio else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best")
        return save_figure(fig, out_dir, f"law_{fit.law}" + ("_ratio" if ratio else ""))


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
