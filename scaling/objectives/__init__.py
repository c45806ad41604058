"""Pretraining objectives: a registry of target builders + losses.

    >>> obj = build_objective(ObjectiveConfig(name="knnn", k=30))
    >>> targets = obj.build_targets(features_sorted)     # numpy, per event
    >>> loss = obj.loss(pred, packed_batch)              # torch scalar

A new objective is one file: subclass `Objective`, decorate with `@register("name")`, import it below.
"""

from scaling.objectives.base import (
    REGISTRY,
    Objective,
    ObjectiveConfig,
    build_objective,
    check_backbone,
    register,
)
from scaling.objectives.contrastive import ContrastiveObjective
from scaling.objectives.difficulty import fit_difficulty_table
from scaling.objectives.knnn import (
    KnnnObjective,
    knnn_brute_force,
    knnn_indices_torch,
    knnn_neighbours,
)
from scaling.objectives.masked import MaskedPointObjective
from scaling.objectives.next_token import NextTokenObjective
from scaling.objectives.supervised import SupervisedObjective

__all__ = [
    "REGISTRY",
    "ContrastiveObjective",
    "KnnnObjective",
    "MaskedPointObjective",
    "NextTokenObjective",
    "SupervisedObjective",
    "Objective",
    "ObjectiveConfig",
    "build_objective",
    "check_backbone",
    "fit_difficulty_table",
    "knnn_brute_force",
    "knnn_indices_torch",
    "knnn_neighbours",
    "register",
]
