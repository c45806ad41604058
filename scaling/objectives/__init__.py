"""Pretraining objectives: a registry of target builders + losses.

    >>> obj = build_objective(ObjectiveConfig(name="knnn", k=30))
    >>> targets = obj.build_targets(features_sorted)     # numpy, per event
    >>> loss = obj.loss(pred, packed_batch)              # torch scalar

A new objective is one file: subclass `Objective`, decorate with `@register("name")`, import it below.
"""

from scaling.objectives.base import REGISTRY, Objective, ObjectiveConfig, build_objective, register
from scaling.objectives.difficulty import fit_difficulty_table
from scaling.objectives.knnn import (
    KnnnObjective,
    knnn_brute_force,
    knnn_indices_torch,
    knnn_neighbours,
)
from scaling.objectives.next_token import NextTokenObjective

__all__ = [
    "REGISTRY",
    "KnnnObjective",
    "NextTokenObjective",
    "Objective",
    "ObjectiveConfig",
    "build_objective",
    "fit_difficulty_table",
    "knnn_brute_force",
    "knnn_indices_torch",
    "knnn_neighbours",
    "register",
]
