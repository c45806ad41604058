"""The objective's config, importable without torch (the launcher validates every run's config with it).

`ObjectiveConfig` is every objective's options in one flat `objective:` section: the shared keys
(options.py) and each objective's own, declared with their checks beside that objective (knnn_options.py,
masked_options.py, contrastive_options.py) and combined here by inheritance.

Built-in objective names are listed here so that checking them needs no torch; any other name is looked up
in the registry, which imports the objectives (and torch). tests/unit/test_launch_no_torch.py keeps the list
equal to the registry's built-ins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from scaling.objectives.contrastive_options import ContrastiveOptions
from scaling.objectives.knnn_options import KnnnOptions
from scaling.objectives.masked_options import MPM_TARGETS, MpmOptions
from scaling.objectives.options import LOSSES, METRICS, TARGET_SCALINGS

BUILTIN_OBJECTIVES: tuple[str, ...] = ("knnn", "next_token", "mpm", "contrastive", "supervised")
# What the config check needs of the built-ins without importing them (the classes' causal_only / n_views)
CAUSAL_ONLY_OBJECTIVES: tuple[str, ...] = ("knnn", "next_token")
MULTI_VIEW_OBJECTIVES: tuple[str, ...] = ("contrastive",)
GEOMETRY_KEYS = ("r_min", "r_max", "phi_min", "phi_max", "eta_min", "eta_max")
__all__ = [
    "BUILTIN_OBJECTIVES",
    "GEOMETRY_KEYS",
    "LOSSES",
    "METRICS",
    "MPM_TARGETS",
    "TARGET_SCALINGS",
    "ObjectiveConfig",
    "check_backbone",
    "known_objectives",
]


def known_objectives(name: str) -> set[str]:
    """Objective names valid for `name`'s check: the built-ins, plus the registry when `name` is not one."""
    if name in BUILTIN_OBJECTIVES:
        return set(BUILTIN_OBJECTIVES)
    registry = importlib.import_module("scaling.objectives").REGISTRY
    return set(BUILTIN_OBJECTIVES) | set(registry)


@dataclass(kw_only=True)
class ObjectiveConfig(ContrastiveOptions, MpmOptions, KnnnOptions):
    """The pretraining objective: the shared keys, then k-NNN's, MPM's and the contrastive objective's."""

    def __post_init__(self) -> None:
        known = known_objectives(self.name)
        if self.name not in known:
            raise ValueError(
                f"objective.name: unknown objective {self.name!r}; choose one of {sorted(known)}"
            )
        super().__post_init__()  # the shared checks, then each objective's (options.py)


def check_backbone(cfg: ObjectiveConfig, direction: str, micro_batch_events: int) -> None:
    """A ValueError naming the key when the backbone or the batch cannot serve the objective."""
    if cfg.name in BUILTIN_OBJECTIVES:
        causal_only = cfg.name in CAUSAL_ONLY_OBJECTIVES
        n_views = 2 if cfg.name in MULTI_VIEW_OBJECTIVES else 1
    else:
        cls = importlib.import_module("scaling.objectives").REGISTRY[cfg.name]
        causal_only, n_views = cls.causal_only, cls.n_views
    if direction == "bidirectional" and causal_only:
        raise ValueError(
            f"model.direction=bidirectional sees the targets of objective {cfg.name} (later points); "
            "use model.direction=causal, or objective.name=mpm, contrastive or supervised"
        )
    if n_views > 1 and micro_batch_events < 2:
        raise ValueError(
            f"budget.micro_batch_events={micro_batch_events}: {cfg.name} contrasts the events of one "
            "micro-batch; set budget.micro_batch_events >= 2"
        )
