"""Learning-rate schedules as pure functions of the step: linear warm-up, then
- `cosine` (default, the paper's): cosine decay to `min_ratio` over the rest of the budget;
- `wsd` (warmup-stable-decay, Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
  Training Durations"): the peak until the last `decay_fraction` of the budget, then a 1-sqrt cooldown to
  `min_ratio` (their best shape); a stable-phase checkpoint can be cooled down to any shorter budget;
- `constant`: the peak to the end.

Each schedule is a function registered by name (`@register("name")`, scaling/registry.py); `lr_factor` applies
the shared warm-up and then the named one, and the config check (`ScheduleConfig`) reads the same registry.

The trainer sets each parameter group's LR itself before every optimizer step (`apply_lr`), so each μP group
keeps its multiplier and the first step does not run at LR 0 (DeepSpeed's schedulers do).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from scaling.registry import Registry

REGISTRY: Registry[Callable[..., float]] = Registry(
    "schedule", unknown="schedule.name={name!r}: use one of {choices}"
)
register = REGISTRY.register


def lr_factor(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float = 0.0,
    name: str = "cosine",
    decay_fraction: float = 0.2,
) -> float:
    """Multiplier of the peak LR for the optimizer step that makes weights of step `step` + 1.

    Before `warmup_steps` every schedule is the linear warm-up (step + 1) / warmup, so the first step is not
    at 0; from there on the schedule registered under `name` gives the factor."""
    decay = REGISTRY.lookup(name)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return decay(
        step,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        min_ratio=min_ratio,
        decay_fraction=decay_fraction,
    )


# A schedule: the factor at `step` >= warmup_steps, given the keyword arguments of `lr_factor` (except name).
@register("cosine")
def cosine(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float, decay_fraction: float
) -> float:
    """Cosine from 1 down to `min_ratio` over [warmup, total) (SGDR, Loshchilov & Hutter 2017), then
    `min_ratio`."""
    if step >= total_steps:
        return min_ratio
    span = max(1, total_steps - warmup_steps)
    progress = (step - warmup_steps) / span  # in [0, 1)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@register("wsd")
def wsd(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float, decay_fraction: float) -> float:
    """1 until the cooldown's first step, total - ceil(decay_fraction x total) (not inside the warm-up), then
    1 - sqrt(progress) down towards `min_ratio` (Hägele et al. 2024); `min_ratio` from `total_steps` on."""
    if step >= total_steps:
        return min_ratio
    start = max(warmup_steps, total_steps - math.ceil(decay_fraction * total_steps))
    if step < start:
        return 1.0
    progress = (step - start) / max(1, total_steps - start)  # in [0, 1)
    return min_ratio + (1.0 - min_ratio) * (1.0 - math.sqrt(progress))


@register("constant")
def constant(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float, decay_fraction: float
) -> float:
    """The peak to the end (and beyond)."""
    return 1.0


SCHEDULES: tuple[str, ...] = REGISTRY.names()  # the built-ins; a later registration is in REGISTRY only


def group_lrs(peak_lr: float, factor: float, multipliers: Sequence[float]) -> list[float]:
    """Per-group LR: peak x schedule factor x the group's μP multiplier."""
    return [peak_lr * factor * m for m in multipliers]


def apply_lr(param_groups: list[dict[str, Any]], lrs: Sequence[float]) -> None:
    """Write the LRs into an optimizer's groups (same order as built)."""
    if len(param_groups) != len(lrs):
        raise ValueError(f"apply_lr: {len(param_groups)} parameter groups but {len(lrs)} learning rates")
    for group, lr in zip(param_groups, lrs, strict=True):
        group["lr"] = lr
