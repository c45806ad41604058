"""The compute frontier: the lower envelope of all runs' validation-loss curves against cumulative FLOPs.

At a budget C, the frontier is the lowest validation loss any run had reached having spent at most C FLOPs
(C_min in Kaplan et al. 2020 and FM4NPP Figure 4c). It is evaluated on a log-spaced grid of budgets so each
decade weighs the same in the fit, and records which run is optimal at each budget. Unfinished runs contribute
their partial curves: a curve's points up to where it stopped are as real as a finished run's. A WSD run's
cooldown branches (analysis.runs) enter as one-point curves of their own, resampled together with their run.

    >>> front = compute_frontier(sweep.all_runs, n_grid=40)
    >>> front.budgets, front.loss, front.segments()
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.runs import RunRecord


@dataclass(kw_only=True)
class Frontier:
    """Envelope on a budget grid; `curves` are each run's (FLOPs, best-so-far loss), sorted by FLOPs."""

    budgets: np.ndarray  # (G,)
    loss: np.ndarray  # (G,)
    run_index: np.ndarray  # (G,) which run is optimal at each budget
    run_names: list[str]
    run_models: list[str]
    run_params: list[float]
    curves: list[tuple[np.ndarray, np.ndarray]]
    groups: np.ndarray | None = None  # (R,) run of each curve (a cooldown branch: its parent's); None: own

    @property
    def n_groups(self) -> int:
        return len(self.curves) if self.groups is None else int(self.groups.max()) + 1

    def segments(self) -> list[dict[str, object]]:
        """Consecutive budget ranges with the same optimal run."""
        out: list[dict[str, object]] = []
        for budget, idx in zip(self.budgets, self.run_index, strict=True):
            if out and out[-1]["run"] == self.run_names[idx]:
                out[-1]["flops_to"] = float(budget)
                continue
            out.append(
                {
                    "run": self.run_names[idx],
                    "model": self.run_models[idx],
                    "params": self.run_params[idx],
                    "flops_from": float(budget),
                    "flops_to": float(budget),
                }
            )
        return out


def _best_so_far(run: RunRecord) -> tuple[np.ndarray, np.ndarray] | None:
    curve = run.val
    keep = np.isfinite(curve.flops) & np.isfinite(curve.loss) & (curve.flops > 0) & (curve.loss > 0)
    if not keep.any():
        return None
    order = np.argsort(curve.flops[keep], kind="stable")
    flops, loss = curve.flops[keep][order], curve.loss[keep][order]
    return flops, np.minimum.accumulate(loss)


def envelope(
    curves: list[tuple[np.ndarray, np.ndarray]], budgets: np.ndarray, use: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(loss, run index) of the lower envelope at each budget over the runs marked in `use` (R,) bool."""
    table = np.full((len(curves), budgets.size), np.inf)  # (R, G): run r's best loss within budget g
    for r, (flops, best) in enumerate(curves):
        if use is not None and not use[r]:
            continue
        pos = np.searchsorted(flops, budgets * (1 + 1e-12), side="right") - 1
        table[r] = np.where(pos >= 0, best[np.maximum(pos, 0)], np.inf)
    idx = table.argmin(0)
    return table[idx, np.arange(budgets.size)], idx


def compute_frontier(runs: list[RunRecord], *, n_grid: int = 40) -> Frontier:
    """The envelope of every run with a validation curve carrying FLOPs, on `n_grid` log-spaced budgets."""
    kept = [(run, c) for run in runs if run.val is not None and (c := _best_so_far(run)) is not None]
    if len(kept) < 1:
        raise ValueError(
            "no run has a validation curve with FLOPs: the compute frontier needs metrics.jsonl "
            "val rows carrying 'flops' and 'val_loss'"
        )
    curves = [c for _, c in kept]
    lo = min(float(f[0]) for f, _ in curves)
    hi = max(float(f[-1]) for f, _ in curves)
    if hi <= lo:
        raise ValueError(f"all validation points sit at one budget ({lo:g} FLOPs): nothing to fit")
    budgets = np.geomspace(lo, hi, n_grid)
    loss, idx = envelope(curves, budgets)
    index: dict[str, int] = {}
    groups = np.array([index.setdefault(r.parent or r.name, len(index)) for r, _ in kept])
    return Frontier(
        budgets=budgets,
        loss=loss,
        run_index=idx,
        run_names=[r.name for r, _ in kept],
        run_models=[r.model for r, _ in kept],
        run_params=[float(r.params_non_embedding) for r, _ in kept],
        curves=curves,
        groups=groups,
    )


def frontier_resample(front: Frontier, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The envelope of a bootstrap draw of runs (duplicates change nothing; absent runs drop out); a run's
    cooldown branches are drawn with it."""
    n = front.n_groups
    use = np.bincount(rng.integers(0, n, n), minlength=n) > 0
    if front.groups is not None:
        use = use[front.groups]
    loss, _ = envelope(front.curves, front.budgets, use)
    ok = np.isfinite(loss)
    return front.budgets[ok], loss[ok]
