"""The law interface and its registry: what `analysis.fit`, `analysis.plots` and `analysis.report` ask of
a law.

A law is a class registered by name (`@register("model")`; the registry holds one instance). It says which
points it takes from a sweep and fits them (`fit`), whether a sweep supports it (`supported`, for the report),
and how its figure is drawn (`draw`), and carries its parameter names and axis label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.runs import RunRecord, Sweep, one_setting
from scaling.registry import Registry

if TYPE_CHECKING:
    from analysis.result import LawFit

REGISTRY: Registry[Law] = Registry("law", unknown="--law {name}: choose one of {choices}")


def register(name: str) -> Callable[[type[Law]], type[Law]]:
    """Class decorator: register an instance of the law under `name` (the `--law` choice and `fit.law`)."""

    def add(cls: type[Law]) -> type[Law]:
        REGISTRY.add(name, cls())
        cls.name = name
        return cls

    return add


@dataclass(kw_only=True)
class FitRequest:
    """What `fit_source` asks of a law: the sweep, the options of the CLI, and lists the law extends with the
    runs it leaves out and what it assumed (both start with the sweep's own)."""

    sweep: Sweep
    loss: str = "final"  # --loss
    loss_key: str = "final_val_loss"  # the RunRecord field it names
    x_data: str = "tokens"  # --x-data: the data law's x axis
    irreducible: str = "auto"
    n_boot: int = 1000
    seed: int = 0
    excluded: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Law:
    """One scaling law; subclasses set the attributes and implement `fit` and `draw`."""

    name = ""  # set by @register
    params: tuple[str, ...] = ()  # the fitted parameters (LawFit.params keys)
    x_label = ""  # the figure's x axis
    report_order = 100  # position among the report's laws (model, data, joint, compute: 0-3)
    ratio_variant = False  # the report fits it again on val_loss_ratio where every run logged one

    def supported(self, sweep: Sweep) -> bool:
        """Whether the report fits this law on `sweep` (default: only on request, `--law NAME`)."""
        return False

    def fit(self, req: FitRequest) -> LawFit:
        raise NotImplementedError

    def axis_label(self, fit: LawFit) -> str:
        return self.x_label

    def draw(self, ax: Any, sweep: Sweep, fit: LawFit) -> None:
        """Draw the points and the fit on `ax` (log axes, labels of y and title are set by the caller)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<law {self.name}: {type(self).__name__}>"


def best_per_value(runs: list[RunRecord], key: str, loss_key: str) -> tuple[list[RunRecord], list[str]]:
    """One run per distinct `key` value (the lowest loss): several learning rates or seeds at one size must
    not enter a size law as separate points. Returns (kept runs, names of dropped runs)."""
    best: dict[float, RunRecord] = {}
    for run in runs:
        value, current = getattr(run, key), best.get(getattr(run, key))
        if current is None or getattr(run, loss_key) < getattr(current, loss_key):
            best[value] = run
    kept = [r for r in runs if best.get(getattr(r, key)) is r]
    return kept, [r.name for r in runs if best.get(getattr(r, key)) is not r]


def setting_of_most(req: FitRequest, runs: list[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """The runs of the sweep's most common target setting; the others are noted as excluded in `req`."""
    kept, other, setting = one_setting(runs)
    if other:
        req.excluded += [{"name": r.name, "reason": f"another target setting ({r.setting})"} for r in other]
        req.notes.append(
            f"{len(other)} run(s) use another target setting than the law's ({setting}): their losses are "
            "in other units, so they are left out"
        )
    return kept, other


@dataclass
class CompletedPoints:
    """The completed runs a law fits, their names, losses and model sizes (non-embedding, else total)."""

    runs: list[RunRecord]
    names: list[str]
    loss: np.ndarray
    params: np.ndarray


def completed_points(req: FitRequest, law: str, one_per: str | None = None) -> CompletedPoints:
    """The completed runs of `req.sweep` with their losses; with `one_per`, the lowest-loss run of each value
    of that RunRecord field (noted in `req`). A ratio loss that some run did not log is an error."""
    sweep, loss, loss_key = req.sweep, req.loss, req.loss_key
    runs = sweep.completed
    if not runs:
        raise ValueError(f"{sweep.source}: no completed runs to fit (excluded: {len(sweep.excluded)})")
    runs, other = setting_of_most(req, runs)
    if one_per is not None:
        runs, dropped = best_per_value(runs, one_per, loss_key)
        req.excluded += [{"name": n, "reason": "a run of the same size had a lower loss"} for n in dropped]
        if dropped:
            req.notes.append(
                f"{len(dropped)} run(s) shared a {law} size with another (e.g. an LR sweep): "
                "the lowest-loss run of each size is used"
            )
    names = [r.name for r in runs]
    y = np.array([getattr(r, loss_key) for r in runs])
    if "ratio" in loss and np.isnan(y).any():
        missing = [n for n, v in zip(names, y, strict=True) if np.isnan(v)]
        raise ValueError(
            f"--loss {loss}: run(s) {', '.join(missing[:5])} logged no val_loss_ratio (trained before "
            "runs fitted a baseline, or no validation); rerun them or fit --loss final"
        )
    params = np.array([r.params_non_embedding for r in runs])
    if np.isnan(params).any():
        params = np.where(np.isnan(params), [r.params_total for r in runs], params)
        req.notes.append("params_non_embedding missing for some runs: params_total used there")
    return CompletedPoints(runs, names, y, params)
