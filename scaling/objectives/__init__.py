"""Pretraining objectives: a registry of target builders + losses.

    >>> obj = build_objective(ObjectiveConfig(name="knnn", k=30))
    >>> targets = obj.build_targets(features_sorted)     # numpy, per event
    >>> loss = obj.loss(pred, packed_batch)              # torch scalar

A new objective is one file: subclass `Objective`, decorate with `@register("name")`, and add its module to
`OBJECTIVE_MODULES` below. Names are imported on first use (scaling/lazy.py); resolving any of them imports
every objective module first, so the registry is complete. `ObjectiveConfig` needs no torch.

Its options (keys of the flat `objective:` section) live beside it in a torch-free module: a keyword-only
dataclass subclassing `ObjectiveOptions` (options.py, the shared keys) whose fields are declared with
`doc(...)` and whose checks sit in a `__post_init__` that calls `super().__post_init__()` first, as in
knnn_options.py (`KnnnOptions`), masked_options.py (`MpmOptions`) and contrastive_options.py
(`ContrastiveOptions`). Add it to the bases of `ObjectiveConfig` (config.py) and, for a built-in, its name to
`BUILTIN_OBJECTIVES` there; the YAML key is the field name (`objective.<field>`), and a key's name must not be
taken by another objective's options.
"""

from scaling.lazy import lazy_exports

OBJECTIVE_MODULES = (
    "scaling.objectives.knnn",
    "scaling.objectives.next_token",
    "scaling.objectives.masked",
    "scaling.objectives.contrastive",
    "scaling.objectives.supervised",
)

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
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ObjectiveConfig": "scaling.objectives.config",
        "REGISTRY": "scaling.objectives.base",
        "Objective": "scaling.objectives.base",
        "build_objective": "scaling.objectives.base",
        "register": "scaling.objectives.base",
        "fit_difficulty_table": "scaling.objectives.difficulty",
        "KnnnObjective": "scaling.objectives.knnn",
        "knnn_brute_force": "scaling.objectives.knnn",
        "knnn_indices_torch": "scaling.objectives.knnn",
        "knnn_neighbours": "scaling.objectives.knnn",
        "NextTokenObjective": "scaling.objectives.next_token",
        "check_backbone": "scaling.objectives.base",
        "MaskedPointObjective": "scaling.objectives.masked",
        "ContrastiveObjective": "scaling.objectives.contrastive",
        "SupervisedObjective": "scaling.objectives.supervised",
    },
    first=OBJECTIVE_MODULES,
)
