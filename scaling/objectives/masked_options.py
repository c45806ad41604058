"""Masked point modelling's options (masked.py), torch-free: the mask, the target, the codebook."""

from __future__ import annotations

from dataclasses import dataclass

from scaling.config import doc
from scaling.objectives.options import ObjectiveOptions

MPM_TARGETS = ("tokens", "vqvae", "regression")


@dataclass(kw_only=True)
class MpmOptions(ObjectiveOptions):
    """mpm: `objective.mask_ratio`, `mpm_target`, `codebook_size`, `codebook_points`, `order_head`."""

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

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"objective.mask_ratio: must lie in (0, 1), got {self.mask_ratio}; MPM uses 0.3")
        if self.mpm_target not in MPM_TARGETS:
            raise ValueError(
                f"objective.mpm_target: {self.mpm_target!r} is not one of {', '.join(MPM_TARGETS)}"
            )
        if self.codebook_size < 2 or self.codebook_points < 1:
            raise ValueError("objective.codebook_size must be >= 2 and objective.codebook_points >= 1")
