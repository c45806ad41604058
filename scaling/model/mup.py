"""muP for the Mamba-2 family: parameter classes, their init and learning-rate multipliers, and the init.

Rules (Adam), every multiplier 1 at `cfg.base_width` (m3 = 256), so the LR tuned on m3 transfers:

| class    | parameters                               | init std x          | LR x          |
| -------- | ---------------------------------------- | ------------------- | ------------- |
| input    | embedding weights (fan-in fixed)         | 1                   | 1             |
| hidden   | in_proj [z, x] and [dt] rows, out_proj   | 1 (~ 1/sqrt(fan_in)) | base / width |
| ssm_bc   | in_proj [B, C] rows (width -> d_state)   | sigma_B, sigma_C    | eta_B, eta_C  |
| output   | head weight                              | sqrt(base / width)  | base / width  |
| conv     | depthwise conv1d weight (fan-in d_conv)  | 1                   | 1             |
| no_decay | norms, biases, A_log, D, dt_bias         | 1                   | 1             |

The output init multiplier makes the head's std ~ 1/width (nn.Linear's default is ~ 1/sqrt(width)).
Input, hidden and output follow Yang et al. 2022 (Tensor Programs V, Table 3). The B and C projections follow
Vankadara et al. 2024 ("On feature learning in structured state space models"): sigma_B ~ sqrt(N_x / N_u),
sigma_C ~ 1 / sqrt(N_x N_u), eta_B ~ N_x / sqrt(N_u), eta_C ~ 1 / (N_x sqrt(N_u)), N_u = width,
N_x = d_state. The base model has the same d_state, so N_x cancels after normalisation and B and C share one
multiplier: init std ~ 1/sqrt(width) (nn.Linear's default already) and LR ~ sqrt(base / width). B and C are
rows of in_proj; the mixer stores them as their own parameter (see `scaling.model.mamba2.PackedInProj`), so
they get their own Adam group while the state_dict keeps mamba_ssm's single `in_proj.weight`.

The optimiser's groups (one per class, the learning rates) are scaling/train/param_groups.py; the coordinate
check across widths is `python -m scaling.train.coordcheck`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scaling.model.config import ModelConfig

CLASSES = ("input", "hidden", "ssm_bc", "output", "conv", "no_decay")
NO_DECAY_SUFFIXES = ("A_log", "D", "dt_bias", "bias", "norm.weight", "norm_f.weight")


def classify_parameter(name: str) -> str:
    """The muP class of a parameter, from its name (the one place no-weight-decay is decided)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("A_log", "D", "dt_bias", "bias") or name.endswith(NO_DECAY_SUFFIXES):
        return "no_decay"
    if name.startswith("embedding."):
        return "input"
    if name in ("head.order.weight",):  # the order-head's index encoding: fan-in fixed, like the embedding
        return "input"
    if name.startswith("head.") and name.endswith(("fc1.weight", "fc2.weight")):
        return "hidden"
    if name.startswith("head."):
        return "output"
    if name.endswith("merge.weight"):  # bidirectional concat -> width projection
        return "hidden"
    if name.endswith("in_proj.weight_bc"):
        return "ssm_bc"
    if name.endswith(("in_proj.weight_zx", "in_proj.weight_dt", "out_proj.weight")):
        return "hidden"
    if name.endswith("conv1d.weight"):
        return "conv"
    raise ValueError(f"parameter {name} has no muP class; add it to scaling.model.mup.classify_parameter")


def _bc_scales(width: int, d_state: int) -> tuple[float, float, float, float]:
    """(sigma_B, sigma_C, eta_B, eta_C) up to constants, Vankadara et al. 2024."""
    nu, nx = float(width), float(d_state)
    return math.sqrt(nx / nu), 1.0 / math.sqrt(nx * nu), nx / math.sqrt(nu), 1.0 / (nx * math.sqrt(nu))


def multipliers(cfg: ModelConfig) -> dict[str, dict[str, float]]:
    """{class: {"lr": x, "init": x}} relative to the defaults; all 1 at base width or under `standard`."""
    if cfg.parameterization == "standard":
        return {c: {"lr": 1.0, "init": 1.0} for c in CLASSES}
    ratio = cfg.base_width / cfg.width
    s_b, s_c, e_b, e_c = _bc_scales(cfg.width, cfg.d_state)
    s_b0, s_c0, e_b0, e_c0 = _bc_scales(cfg.base_width, cfg.d_state)
    # Relative to nn.Linear's default std (1/sqrt(width)): the base std rescaled by sigma(width)/sigma(base).
    default_ratio = math.sqrt(ratio)
    bc_init = (s_b / s_b0) / default_ratio
    if not math.isclose(bc_init, (s_c / s_c0) / default_ratio) or not math.isclose(e_b / e_b0, e_c / e_c0):
        raise AssertionError("B and C share one parameter block; their muP multipliers must agree")
    return {
        "input": {"lr": 1.0, "init": 1.0},
        "hidden": {"lr": ratio, "init": 1.0},
        "ssm_bc": {"lr": e_b / e_b0, "init": bc_init},
        "output": {"lr": ratio, "init": math.sqrt(ratio)},
        "conv": {"lr": 1.0, "init": 1.0},
        "no_decay": {"lr": 1.0, "init": 1.0},
    }


@torch.no_grad()
def apply_init(model: nn.Module, cfg: ModelConfig) -> None:
    """Rescale the default initialisation by the muP init multipliers (no-op under `standard`)."""
    mult = multipliers(cfg)
    for name, module in model.named_modules():
        if hasattr(module, "weight_bc"):
            module.reset_parameters(scale_bc=mult["ssm_bc"]["init"], scale_zx=mult["hidden"]["init"])
        elif name in ("head", "head.out") and isinstance(module, nn.Linear):
            module.weight.mul_(mult["output"]["init"])


__all__ = ["CLASSES", "apply_init", "classify_parameter", "multipliers"]
