"""The options every objective shares (torch-free): the root of each objective's options dataclass.

An objective's own options subclass `ObjectiveOptions` in a small torch-free module beside it
(knnn_options.py, masked_options.py, contrastive_options.py), with their checks in a `__post_init__` that
calls `super().__post_init__()` first; `ObjectiveConfig` (config.py) inherits them all, so every option keeps
its flat YAML key (`objective.k`, `objective.mask_ratio`, ...) and every check runs once.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.config import doc

METRICS = ("normalised", "physical")
TARGET_SCALINGS = ("none", "standard", "robust")
LOSSES = ("mse", "huber")


@dataclass(kw_only=True)
class ObjectiveOptions:
    """Keys shared by the objectives: the name, the difficulty weights, the offset targets and their loss."""

    name: str = doc(
        "objective: knnn (k next-nearest neighbours), next_token, mpm (masked point modelling), "
        "contrastive (NT-Xent on two augmented views) or supervised (per-point PID and noise: uses labels)",
        default="knnn",
    )
    relative_targets: bool = doc(
        "predict neighbour positions as offsets from the point (better conditioned), not absolute",
        default=True,
    )
    difficulty_rescaling: bool = doc("weight per-event losses by event difficulty (paper B.7)", default=True)
    difficulty_bins: int = doc("number of equal-frequency difficulty bins", default=10)
    metric: str = doc(
        "neighbour metric and target units: normalised (the paper: the min-max (r, phi, eta) cube) or "
        "physical (dr, r*dphi, dz in cm; targets.py)",
        default="normalised",
    )
    target_scaling: str = doc(
        "targets as built (none), standardised per slot and coordinate (standard), or asinh of the "
        "median/MAD-scaled value then standardised (robust); statistics fitted on the train split and "
        "stored in the run directory (target_stats.json)",
        default="none",
    )
    loss: str = doc("per-scalar loss: mse (the paper) or huber", default="mse")
    huber_delta: float = doc("Huber transition point, in target units (loss: huber)", default=1.0)

    def __post_init__(self) -> None:
        if self.difficulty_bins < 1:
            raise ValueError(f"objective.difficulty_bins: must be >= 1, got {self.difficulty_bins}")
        choices = {"metric": METRICS, "target_scaling": TARGET_SCALINGS, "loss": LOSSES}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"objective.{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}"
                )
        if not self.huber_delta > 0:
            raise ValueError(f"objective.huber_delta: must be > 0, got {self.huber_delta}")
        if not self.relative_targets and self.target_scaling != "none":
            raise ValueError(
                "objective.target_scaling applies to offsets; set objective.relative_targets=true or "
                "objective.target_scaling=none (the paper's absolute targets are unscaled)"
            )
        if self.metric == "physical" and not self.relative_targets:
            raise ValueError(
                "objective.metric=physical predicts offsets in cm; set objective.relative_targets=true "
                "(absolute targets are the paper's normalised setting)"
            )
        if self.name not in ("knnn", "next_token") and self.target_scaling != "none":
            raise ValueError(
                f"objective.target_scaling={self.target_scaling} applies to knnn and next_token; "
                f"set it to none for {self.name}"
            )
