"""What the input pipeline hands the model and the objective: one event (`Sample`) and a batch of them,
packed along one sequence (`PackedBatch`) or padded (`PaddedBatch`); made by scaling/inputs/pipeline.py.

Its own module so the objectives can name the batch they score without importing the pipeline, which calls
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(kw_only=True)
class Sample:
    """One event ready for the model: serialised features and the objective's targets."""

    features: np.ndarray  # (n, 4) float32 [e_std, r01, phi01, eta01] in serialised order
    targets: dict[str, np.ndarray]  # per-token arrays (n, ...) and per-event 0-d scalars
    perm: np.ndarray  # (n,) int64: features[t] is the original point perm[t]
    event_id: int
    weight: float = 1.0  # difficulty weight of the event in the loss

    @property
    def n_points(self) -> int:
        return int(self.features.shape[0])


@dataclass(kw_only=True)
class PackedBatch:
    """Events concatenated along one sequence (batch dimension 1)."""

    features: torch.Tensor  # [1, T, 4] float32
    seq_idx: torch.Tensor  # [1, T] int32: event index within the batch
    cu_seqlens: torch.Tensor  # [n_events + 1] int32: event boundaries
    targets: dict[str, torch.Tensor]  # per-token [T, ...] concatenated; per-event [n_events]
    weights: torch.Tensor  # [n_events] float32
    event_ids: list[int] = field(default_factory=list)
    n_events: int = 0
    n_tokens: int = 0

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PackedBatch:
        """The same batch with every tensor on `device`."""
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return PackedBatch(
            features=move(self.features),
            seq_idx=move(self.seq_idx),
            cu_seqlens=move(self.cu_seqlens),
            targets={k: move(v) for k, v in self.targets.items()},
            weights=move(self.weights),
            event_ids=list(self.event_ids),
            n_events=self.n_events,
            n_tokens=self.n_tokens,
        )


@dataclass(kw_only=True)
class PaddedBatch:
    """Events padded to the longest one (the layout packing replaces)."""

    features: torch.Tensor  # [B, L_max, 4] float32, zeros past each event's length
    lengths: torch.Tensor  # [B] int64
    event_ids: list[int] = field(default_factory=list)

    @property
    def padding_fraction(self) -> float:
        total = self.features.shape[0] * self.features.shape[1]
        return 1.0 - float(self.lengths.sum()) / total if total else 0.0
