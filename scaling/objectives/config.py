"""The objective's config, importable without torch (the launcher validates every run's config with it).

Built-in objective names are listed here so that checking them needs no torch; any other name is looked up
in the registry, which imports the objectives (and torch). tests/unit/test_launch_no_torch.py keeps the list
equal to the registry's built-ins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from scaling.config import doc
from scaling.objectives.augment import AugmentConfig

BUILTIN_OBJECTIVES: tuple[str, ...] = ("knnn", "next_token", "mpm", "contrastive", "supervised")
# What the config check needs of the built-ins without importing them (the classes' causal_only / n_views)
CAUSAL_ONLY_OBJECTIVES: tuple[str, ...] = ("knnn", "next_token")
MULTI_VIEW_OBJECTIVES: tuple[str, ...] = ("contrastive",)
METRICS = ("normalised", "physical")
TARGET_SCALINGS = ("none", "standard", "robust")
LOSSES = ("mse", "huber")
MPM_TARGETS = ("tokens", "vqvae", "regression")
GEOMETRY_KEYS = ("r_min", "r_max", "phi_min", "phi_max", "eta_min", "eta_max")


def known_objectives(name: str) -> set[str]:
    """Objective names valid for `name`'s check: the built-ins, plus the registry when `name` is not one."""
    if name in BUILTIN_OBJECTIVES:
        return set(BUILTIN_OBJECTIVES)
    registry = importlib.import_module("scaling.objectives").REGISTRY
    return set(BUILTIN_OBJECTIVES) | set(registry)


@dataclass(kw_only=True)
class ObjectiveConfig:
    """The pretraining objective."""

    name: str = doc(
        "objective: knnn (k next-nearest neighbours), next_token, mpm (masked point modelling), "
        "contrastive (NT-Xent on two augmented views) or supervised (per-point PID and noise: uses labels)",
        default="knnn",
    )
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
    mask_ratio: float = doc("mpm: fraction of each event's points masked, floor(ratio * n)", default=0.3)
    mpm_target: str = doc(
        "mpm: tokens (K-means codebook index, cross-entropy; MPM's better target), vqvae (a small VQ-VAE's "
        "code, cross-entropy) or regression (MSE on the masked point's features)",
        default="tokens",
    )
    codebook_size: int = doc("mpm tokens: K of the K-means codebook (MPM: 512)", default=512)
    codebook_points: int = doc(
        "mpm tokens: at most this many training points (of the first data.difficulty_events events) fit "
        "the codebook, stored in the run directory (baseline.json)",
        default=65536,
    )
    order_head: bool = doc(
        "mpm: the pretraining head also sees the serialisation index (MPM's order-head); the backbone not",
        default=True,
    )
    temperature: float = doc("contrastive: NT-Xent temperature tau (JetCLR: 0.1)", default=0.1)
    projection_dim: int = doc("contrastive: size of the per-point projection pooled per event", default=64)
    augment: AugmentConfig = field(
        default_factory=AugmentConfig, metadata={"doc": "contrastive: augmentations making the two views"}
    )

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
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"objective.mask_ratio: must lie in (0, 1), got {self.mask_ratio}; MPM uses 0.3")
        if self.mpm_target not in MPM_TARGETS:
            raise ValueError(
                f"objective.mpm_target: {self.mpm_target!r} is not one of {', '.join(MPM_TARGETS)}"
            )
        if self.codebook_size < 2 or self.codebook_points < 1:
            raise ValueError("objective.codebook_size must be >= 2 and objective.codebook_points >= 1")
        if not self.temperature > 0 or self.projection_dim < 1:
            raise ValueError("objective.temperature must be > 0 and objective.projection_dim >= 1")
        if self.name not in ("knnn", "next_token") and self.target_scaling != "none":
            raise ValueError(
                f"objective.target_scaling={self.target_scaling} applies to knnn and next_token; "
                f"set it to none for {self.name}"
            )
        if self.metric == "physical" and self.target_backend == "torch":
            raise ValueError(
                "objective.metric: physical is built by the CPU search only; "
                "set objective.target_backend=tree"
            )


def check_backbone(cfg: ObjectiveConfig, direction: str, micro_batch_events: int) -> None:
    """A ValueError naming the key when the backbone or the batch cannot serve the objective."""
    if cfg.name in BUILTIN_OBJECTIVES:
        causal_only = cfg.name in CAUSAL_ONLY_OBJECTIVES
        n_views = 2 if cfg.name in MULTI_VIEW_OBJECTIVES else 1
    else:
        cls = importlib.import_module("scaling.objectives").REGISTRY[cfg.name]
        causal_only, n_views = cls.causal_only, cls.n_views
    if direction == "bidirectional" and causal_only:
        raise ValueError(
            f"model.direction=bidirectional sees the targets of objective {cfg.name} (later points); "
            "use model.direction=causal, or objective.name=mpm, contrastive or supervised"
        )
    if n_views > 1 and micro_batch_events < 2:
        raise ValueError(
            f"budget.micro_batch_events={micro_batch_events}: {cfg.name} contrasts the events of one "
            "micro-batch; set budget.micro_batch_events >= 2"
        )
