"""The contrastive objective's options (contrastive.py), torch-free: temperature, projection, views."""

from __future__ import annotations

from dataclasses import dataclass, field

from scaling.config import doc
from scaling.objectives.augment import AugmentConfig
from scaling.objectives.options import ObjectiveOptions


@dataclass(kw_only=True)
class ContrastiveOptions(ObjectiveOptions):
    """contrastive: `objective.temperature`, `objective.projection_dim`, `objective.augment.*`."""

    temperature: float = doc("contrastive: NT-Xent temperature tau (JetCLR: 0.1)", default=0.1)
    projection_dim: int = doc("contrastive: size of the per-point projection pooled per event", default=64)
    augment: AugmentConfig = field(
        default_factory=AugmentConfig, metadata={"doc": "contrastive: augmentations making the two views"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0 or self.projection_dim < 1:
            raise ValueError("objective.temperature must be > 0 and objective.projection_dim >= 1")
