"""μP learning-rate transfer: is the optimal learning rate the same at every width?

From an `lr_transfer` sweep (runs differing in `model.width` and `optimizer.lr`): validation loss against LR
for each width, the optimal LR per width from a local quadratic fit in log2 LR around the best point, and
whether the optimum is stable across widths (spread of log2 LR_opt below a threshold, 1 by default: within a
factor 2). This is the claim behind transferring m3's tuned LR to m1–m6 (FM4NPP; Yang et al. 2022, Tensor
Programs V, Figure 1).

    python -m analysis.mup_transfer runs/lr_transfer/ --out report/ [--max-spread-log2 1.0]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.runs import Sweep, load_sweep


@dataclass(kw_only=True)
class WidthOptimum:
    """Optimal LR of one width and how far to trust it."""

    width: int
    lrs: list[float]
    losses: list[float]
    lr_opt: float
    loss_opt: float
    bracketed: bool  # the best LR has a tried LR on each side
    method: str  # "quadratic" or "best point" (when the parabola opens downwards)


@dataclass(kw_only=True)
class Transfer:
    """Per-width optima and the stability verdict."""

    widths: list[WidthOptimum]
    spread_log2: float
    max_spread_log2: float
    stable: bool
    notes: list[str] = field(default_factory=list)


def optimal_lr(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, float, bool, str]:
    """(lr_opt, predicted loss, bracketed, method) from a parabola in log2 LR through the best point and its
    neighbours; an optimum at the edge of the tried range is not bracketed and is reported as such."""
    order = np.argsort(lrs)
    u, y = np.log2(np.asarray(lrs, float)[order]), np.asarray(losses, float)[order]
    if u.size < 3:
        raise ValueError(f"{u.size} learning rate(s) tried: need at least 3 per width for a quadratic fit")
    best = int(np.nanargmin(y))
    bracketed = 0 < best < u.size - 1
    lo = min(max(best - 1, 0), u.size - 3)
    c2, c1, c0 = np.polyfit(u[lo : lo + 3], y[lo : lo + 3], 2)
    if c2 <= 0:  # no minimum in this window: keep the best tried point
        return float(2 ** u[best]), float(y[best]), bracketed, "best point"
    u_opt = float(np.clip(-c1 / (2 * c2), u[lo], u[lo + 2]))
    return float(2**u_opt), float(c0 + c1 * u_opt + c2 * u_opt**2), bracketed, "quadratic"


def analyse_transfer(sweep: Sweep, *, max_spread_log2: float = 1.0, loss: str = "final_val_loss") -> Transfer:
    """Group completed runs by width, find each width's optimum, and judge the spread across widths."""
    groups: dict[int, list[tuple[float, float]]] = {}
    for run in sweep.completed:
        if run.width is None or run.lr is None or not run.lr > 0:
            raise ValueError(f"run {run.name}: needs model.width and a positive optimizer.lr in config.yaml")
        groups.setdefault(run.width, []).append((run.lr, getattr(run, loss)))
    if len(groups) < 2:
        raise ValueError(
            f"{sweep.source}: runs at {len(groups)} width(s); LR transfer needs at least 2 widths"
        )
    optima = []
    for width in sorted(groups):
        lrs, losses = (np.array(v) for v in zip(*sorted(groups[width]), strict=True))
        lr_opt, loss_opt, bracketed, method = optimal_lr(lrs, losses)
        optima.append(
            WidthOptimum(
                width=width,
                lrs=lrs.tolist(),
                losses=losses.tolist(),
                lr_opt=lr_opt,
                loss_opt=loss_opt,
                bracketed=bracketed,
                method=method,
            )
        )
    logs = [math.log2(o.lr_opt) for o in optima]
    spread = max(logs) - min(logs)
    notes = [
        f"width {o.width}: best LR at the edge of the tried range; widen the LR grid"
        for o in optima
        if not o.bracketed
    ]
    stable = spread < max_spread_log2 and not notes
    return Transfer(
        widths=optima, spread_log2=spread, max_spread_log2=max_spread_log2, stable=stable, notes=notes
    )


def format_transfer(result: Transfer) -> str:
    lines = [
        "| width | optimal LR | loss at optimum | bracketed | method |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {o.width} | {o.lr_opt:.3g} | {o.loss_opt:.4g} | {'yes' if o.bracketed else 'NO'} | {o.method} |"
        for o in result.widths
    ]
    verdict = "stable" if result.stable else "NOT stable"
    lines.append(
        f"\nSpread of log2(optimal LR) across widths: {result.spread_log2:.2f} (threshold "
        f"{result.max_spread_log2:g}): the optimal LR is {verdict} across widths."
    )
    lines += [f"- {n}" for n in result.notes]
    return "\n".join(lines)


def plot_transfer(result: Transfer, out_dir: Path, title: str = "learning-rate transfer") -> list[Path]:
    """Validation loss against LR, one line per width, optima marked (Tensor Programs V Figure 1 style)."""
    from analysis.plots import STYLE, plt, save_figure

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for i, o in enumerate(result.widths):
            ax.plot(o.lrs, o.losses, marker="o", color=f"C{i % 10}", label=f"width {o.width}")
            ax.plot([o.lr_opt], [o.loss_opt], marker="*", ms=14, color=f"C{i % 10}", mec="k")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel("validation loss (objective units)")
        ax.set_title(f"{title}: spread {result.spread_log2:.2f} in log2 LR")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best")
        return save_figure(fig, out_dir, "lr_transfer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.mup_transfer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--max-spread-log2", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        result = analyse_transfer(load_sweep(args.sweep), max_spread_log2=args.max_spread_log2)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_transfer(result))
    if args.out:
        for path in plot_transfer(result, args.out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
