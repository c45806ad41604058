"""Contrastive pretraining: NT-Xent (SimCLR; JetCLR in particle physics, tau = 0.1) on pooled event
embeddings.

Each event gives two views (`n_views = 2`), each a physics-valid augmentation of the raw spacepoints made
before normalisation and serialisation (augment.py). The model's per-point output (a linear projection of the
backbone features) is averaged over each view's points: a linear head commutes with the mean, so this is
the projection of the mean-pooled embedding. For 2B views in a micro-batch, view i's positive is the other
view of its event and the 2B - 2 others are negatives:

    l_i = -log( exp(s_ip / tau) / sum_{j != i} exp(s_ij / tau) ),   s = cosine similarity

A constant embedding makes every similarity equal, so l = log(2B - 1): the trivial predictor, whose loss
val_loss_ratio divides by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from scaling.objectives.augment import augment_event
from scaling.objectives.base import Objective, register
from scaling.objectives.baseline import ConstantPredictor

if TYPE_CHECKING:
    from scaling.data.schema import Event
    from scaling.inputs.batch import PackedBatch, Sample


def pool_events(pred: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """[E, D] mean of the per-point rows pred [T, D] over each event (seq_idx) of the batch."""
    seq = batch.seq_idx.reshape(-1).to(pred.device, torch.long)
    sums = torch.zeros(batch.n_events, pred.shape[-1], dtype=pred.dtype, device=pred.device).index_add(
        0, seq, pred
    )
    counts = torch.bincount(seq, minlength=batch.n_events).clamp_min(1).to(pred.dtype)
    return sums / counts[:, None]


def positive_index(event_ids: list[int]) -> torch.Tensor:
    """[E] index of each view's partner (the other view of the same event); anything else is an error."""
    ids = torch.tensor(event_ids)
    same = (ids[:, None] == ids[None, :]) & ~torch.eye(len(event_ids), dtype=torch.bool)
    if not bool((same.sum(1) == 1).all()):
        raise ValueError(
            "contrastive loss: every event of a batch needs exactly two views (BatchSource makes them)"
        )
    return same.float().argmax(1)


def nt_xent(z: torch.Tensor, partner: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean NT-Xent of embeddings z [E, D] with positives `partner` [E]."""
    z = F.normalize(z.float(), dim=-1)
    logits = z @ z.T / temperature  # [E, E]
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    return F.cross_entropy(logits, partner.to(z.device))


@register("contrastive")
class ContrastiveObjective(Objective):
    """Pull the two views of an event together, push other events' views apart."""

    coordinates: tuple[str, ...] = ()
    uses_difficulty = False
    n_views = 2

    @property
    def slots(self) -> int:
        return 1

    @property
    def out_dim(self) -> int:
        return self.cfg.projection_dim

    def augment(self, event: Event, rng: np.random.Generator | None) -> Event:
        rng = rng if rng is not None else np.random.default_rng(int(event.event_id))
        return augment_event(event, self.cfg.augment, rng)

    def build_targets(
        self,
        features01_sorted: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        labels: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """No per-point targets: the positives are the batch's pairs of views."""
        return {}

    def loss(self, pred: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        pred = self.flat_pred(pred, batch)
        return nt_xent(pool_events(pred, batch), positive_index(batch.event_ids), self.cfg.temperature)

    def coordinate_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(0, dtype=torch.float32, device=pred.device), torch.zeros((), device=pred.device)

    def fit_baselines(self, samples: list[Sample]) -> dict[str, Any]:
        """The constant embedding (loss log(2B - 1) on every batch)."""
        return {"constant": {"row": [1.0] * self.out_dim}}

    def baseline_predictor(self, table: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        return ConstantPredictor(table["row"])

    def similarities(self, pred: torch.Tensor, batch: PackedBatch) -> tuple[float, float]:
        """Mean cosine similarity of positive pairs and of negative pairs."""
        z = F.normalize(pool_events(pred.reshape(batch.n_tokens, -1).float(), batch), dim=-1)
        sim = z @ z.T
        partner = positive_index(batch.event_ids).to(z.device)
        pos = sim[torch.arange(z.shape[0]), partner]
        neg = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
        neg[torch.arange(z.shape[0]), partner] = False
        return float(pos.mean()), float(sim[neg].mean())
