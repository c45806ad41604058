"""The objective's config, importable without torch (the launcher validates every run's config with it).

Built-in objective names are listed here so that checking them needs no torch; any other name is looked up
in the registry, which imports the objectives (and torch). tests/unit/test_launch_no_torch.py keeps the list
equal to the registry's built-ins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from scaling.config import doc

BUILTIN_OBJECTIVES: tuple[str, ...] = ("knnn", "next_token")


def known_objectives(name: str) -> set[str]:
    """Objective names valid for `name`'s check: the built-ins, plus the registry when `name` is not one."""
    if name in BUILTIN_OBJECTIVES:
        return set(BUILTIN_OBJECTIVES)
    registry = importlib.import_module("scaling.objectives").REGISTRY
    return set(BUILTIN_OBJECTIVES) | set(registry)


@dataclass(kw_only=True)
class ObjectiveConfig:
    """The pretraining objective."""

    name: str = doc("objective: knnn (k next-nearest neighbours) or next_token", default="knnn")
    k: int = doc("neighbours predicted per spacepoint (knnn)", default=30)
    relative_targets: bool = doc(
        "predict neighbour positions as offsets from the point (better conditioned), not absolute",
        default=True,
    )
    difficulty_rescaling: bool = doc("weight per-event losses by event difficulty (paper B.7)", default=True)
    difficulty_bins: int = doc("number of equal-frequency difficulty bins", default=10)
    target_backend: str = doc(
        "k-NNN search: tree (exact CPU cell-grid search, objectives/neighbours.py) or torch (dense top-k)",
        default="tree",
    )
    target_device: str = doc("device of the torch target backend (cpu, cuda)", default="cpu")

    def __post_init__(self) -> None:
        known = known_objectives(self.name)
        if self.name not in known:
            raise ValueError(
                f"objective.name: unknown objective {self.name!r}; choose one of {sorted(known)}"
            )
        if self.k < 1:
            raise ValueError(f"objective.k: must be >= 1, got {self.k}")
        if self.target_backend not in ("tree", "torch"):
            raise ValueError(f"objective.target_backend: {self.target_backend!r} is not tree or torch")
        if self.difficulty_bins < 1:
            raise ValueError(f"objective.difficulty_bins: must be >= 1, got {self.difficulty_bins}")
