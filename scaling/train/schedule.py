"""Learning-rate schedule: linear warm-up then cosine decay, as a pure function of the step.

The trainer sets each parameter group's LR itself before every optimizer step (`apply_lr`), so each μP group
keeps its multiplier and the first step does not run at LR 0 (DeepSpeed's schedulers do: NOTES.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak LR for the optimizer step that makes weights of step `step` + 1.

    1) step < warmup: linear (step + 1) / warmup, so the first step is not at 0;
    2) warmup <= step < total: cosine from 1 down to `min_ratio` (SGDR, Loshchilov & Hutter 2017);
    3) step >= total: `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step >= total_steps:
        return min_ratio
    span = max(1, total_steps - warmup_steps)
    progress = (step - warmup_steps) / span  # in [0, 1)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def group_lrs(peak_lr: float, factor: float, multipliers: Sequence[float]) -> list[float]:
    """Per-group LR: peak x schedule factor x the group's μP multiplier."""
    return [peak_lr * factor * m for m in multipliers]


def apply_lr(param_groups: list[dict[str, Any]], lrs: Sequence[float]) -> None:
    """Write the LRs into an optimizer's groups (same order as built)."""
    if len(param_groups) != len(lrs):
        raise ValueError(f"apply_lr: {len(param_groups)} parameter groups but {len(lrs)} learning rates")
    for group, lr in zip(param_groups, lrs, strict=True):
        group["lr"] = lr
