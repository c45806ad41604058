"""The optimiser's parameter groups: one AdamW group per muP class, at that class's learning rate.

    >>> groups = build_param_groups(model, cfg.model, lr=cfg.optimizer.lr, weight_decay=0.01)
    >>> [g["name"] for g in groups]         # e.g. input, hidden, ssm_bc, output, conv, no_decay

`lr` is the learning rate at the muP base width; each group's is `lr * lr_mult` (scaling/model/mup.py says
which parameters are in which class and why). The no_decay class has no weight decay.
"""

from __future__ import annotations

from torch import nn

from scaling.model.config import ModelConfig, check_resolved
from scaling.model.mup import CLASSES, classify_parameter, multipliers


def build_param_groups(model: nn.Module, cfg: ModelConfig, lr: float, weight_decay: float) -> list[dict]:
    """Optimizer groups [{"params", "lr", "weight_decay", "name", "lr_mult"}], one per non-empty class."""
    mult = multipliers(check_resolved(cfg))
    by_class: dict[str, list[nn.Parameter]] = {c: [] for c in CLASSES}
    for name, param in model.named_parameters():
        if param.requires_grad:
            by_class[classify_parameter(name)].append(param)
    return [
        {
            "params": params,
            "lr": lr * mult[c]["lr"],
            "weight_decay": 0.0 if c == "no_decay" else weight_decay,
            "name": c,
            "lr_mult": mult[c]["lr"],
        }
        for c, params in by_class.items()
        if params
    ]


__all__ = ["build_param_groups"]
