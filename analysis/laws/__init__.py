"""Scaling laws: each law is one registered definition, and the batched fitting cores they use.

    >>> from analysis.laws import REGISTRY
    >>> REGISTRY.names()          # ('model', 'data', 'compute', 'joint'): the --law choices
    >>> REGISTRY.lookup("model").fit(FitRequest(sweep=sweep))

A law (`base.Law`) knows which points it takes from a sweep and how it is fitted (`fit`), whether the report
fits it on a sweep (`supported`), how its figure is drawn (`draw`), its parameter names and its axis label;
`analysis.fit`, `analysis.plots` and `analysis.report` look a law up by name and ask it. Adding a law is one
decorated class: `@register("name")` on a `Law` subclass, or on a `PowerLaw` (power.py) for a law of the loss
against one run field, in a module imported below.

Modules: `cores` (the optimisers: batched over bootstrap resamples, fitted in log space), `base` (the
interface, the registry, the completed runs a law fits), `power` (single-variable laws: model, data),
`compute` (the compute frontier), `joint` (L(N, D)).
"""

from analysis.laws import compute, joint, power  # noqa: F401  (registers model, data, compute, joint)
from analysis.laws.base import REGISTRY, FitRequest, Law, register
from analysis.laws.cores import (
    ALPHA_BOUNDS,
    E_FLOOR_FRACTION,
    HUBER_DELTA,
    JOINT_NAMES,
    CoreFit,
    fit_joint_batch,
    fit_joint_one,
    fit_power_with_e,
    fit_pure_power,
    joint_bounds,
    joint_grid,
)
from analysis.laws.power import PowerLaw

__all__ = [
    "ALPHA_BOUNDS",
    "E_FLOOR_FRACTION",
    "HUBER_DELTA",
    "JOINT_NAMES",
    "REGISTRY",
    "CoreFit",
    "FitRequest",
    "Law",
    "PowerLaw",
    "fit_joint_batch",
    "fit_joint_one",
    "fit_power_with_e",
    "fit_pure_power",
    "joint_bounds",
    "joint_grid",
    "register",
]
