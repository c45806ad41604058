"""The DeepSpeed JSON config as a pure function of the training config (golden-file tested)."""

from __future__ import annotations

from typing import Any

from scaling.train.config import TrainConfig, accumulation_steps


def use_bf16(cfg: TrainConfig, on_gpu: bool) -> bool:
    """bf16 on GPUs, fp32 on CPU (CPU bf16 kernels are slow and the CPU tests compare bit-exact)."""
    return {"auto": on_gpu, "true": True, "false": False}[cfg.deepspeed.bf16]


def build_deepspeed_config(cfg: TrainConfig, *, world_size: int, on_gpu: bool) -> dict[str, Any]:
    """ZeRO stage, batch sizes, AdamW (torch implementation: nothing JIT-compiled), clipping, precision.

    No DeepSpeed scheduler: the trainer applies the warm-up + cosine LR itself (schedule.py)."""
    opt = cfg.optimizer
    return {
        "train_batch_size": cfg.budget.global_batch_events,
        "train_micro_batch_size_per_gpu": cfg.budget.micro_batch_events,
        "gradient_accumulation_steps": accumulation_steps(cfg, world_size),
        "gradient_clipping": opt.grad_clip,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": opt.lr,
                "betas": list(opt.betas),
                "eps": opt.eps,
                "weight_decay": opt.weight_decay,
                "torch_adam": True,
            },  # fmt: skip
        },
        "zero_optimization": {"stage": cfg.deepspeed.zero_stage},
        "bf16": {"enabled": use_bf16(cfg, on_gpu)},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "checkpoint": {"tag_validation": "Ignore"},
    }
