"""The k-NNN objective's options (knnn.py), torch-free: how many neighbours and how they are searched."""

from __future__ import annotations

from dataclasses import dataclass

from scaling.config import doc
from scaling.objectives.options import ObjectiveOptions


@dataclass(kw_only=True)
class KnnnOptions(ObjectiveOptions):
    """knnn: `objective.k`, `objective.target_backend`, `objective.target_device`."""

    k: int = doc("neighbours predicted per spacepoint (knnn)", default=30)
    target_backend: str = doc(
        "k-NNN search: tree (exact CPU cell-grid search, objectives/neighbours.py) or torch (dense top-k)",
        default="tree",
    )
    target_device: str = doc("device of the torch target backend (cpu, cuda)", default="cpu")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1:
            raise ValueError(f"objective.k: must be >= 1, got {self.k}")
        if self.target_backend not in ("tree", "torch"):
            raise ValueError(f"objective.target_backend: {self.target_backend!r} is not tree or torch")
        if self.metric == "physical" and self.target_backend == "torch":
            raise ValueError(
                "objective.metric: physical is built by the CPU search only; "
                "set objective.target_backend=tree"
            )
