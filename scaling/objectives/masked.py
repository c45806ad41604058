"""Masked point modelling (MPM; Golling et al., "Masked Particle Modeling on Sets", 2024) on spacepoints.

Per event, floor(mask_ratio * n) of its own points are drawn (the event's generator: a fresh mask each epoch,
a fixed one for the validation events); never another event's point, and a packed batch has no padding. The
model replaces the whole input embedding of a masked point (energy and position) by one learnable mask
vector (`model_options`: mask_token), so nothing of it reaches the backbone, and the loss is taken on the
masked points only, averaged per event, then over events. Targets, computed from the batch's own features:

    tokens      the index of the point's K-means code (tokens.py; K = 512, fitted on the first training
                events, stored in baseline.json), cross-entropy; the trivial predictor is the codebook's
                marginal frequency, so val_loss_ratio = cross-entropy / marginal token entropy
    vqvae       the same with the codes of a small VQ-VAE (tokens.py, its weights in baseline.json)
    regression  the point's token features (e, r, eta, cos and sin of phi), MSE; the trivial predictor is
                their training mean

The head is the order-head by default (it sees the serialisation index; the backbone does not).

    >>> obj = build_objective(ObjectiveConfig(name="mpm"))
    >>> obj.fit_baselines(train_samples)                   # fits the codebook
    >>> loss = obj.loss(model(feats, seq_idx, **obj.model_inputs(batch)), batch)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from scaling.objectives.base import Objective, register
from scaling.objectives.baseline import ConstantPredictor
from scaling.objectives.tokens import (
    N_TOKEN_FEATURES,
    VQTokenizer,
    assign_tokens,
    fit_kmeans,
    perplexity,
    sample_points,
    token_features,
)

if TYPE_CHECKING:
    from scaling.inputs.batch import PackedBatch, Sample


def mask_points(n: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) bool with exactly floor(ratio * n) True, drawn uniformly without replacement."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, int(math.floor(ratio * n)), replace=False)] = True
    return mask


@register("mpm")
class MaskedPointObjective(Objective):
    """Predict the K-means token (or the features) of each masked spacepoint."""

    uses_difficulty = False

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.centres: torch.Tensor | None = None  # [K, 5] K-means codebook
        self.vq: VQTokenizer | None = None

    @property
    def tokens(self) -> bool:
        return self.cfg.mpm_target in ("tokens", "vqvae")

    @property
    def metric_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("top1", "majority_rate", "perplexity") if self.tokens else ()

    coordinates: tuple[str, ...] = ()  # no per-coordinate ratios: the loss is one figure per point

    @property
    def slots(self) -> int:
        return 1

    @property
    def out_dim(self) -> int:
        return self.cfg.codebook_size if self.tokens else N_TOKEN_FEATURES

    def model_options(self) -> dict[str, Any]:
        return {"head": "order" if self.cfg.order_head else "linear", "mask_token": True}

    def model_inputs(self, batch: PackedBatch) -> dict[str, torch.Tensor]:
        return {"mask": batch.targets["masked"].reshape(1, -1)}

    def build_targets(
        self,
        features01_sorted: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        labels: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """{"masked": (n,) bool}: which points the model does not see (and is scored on)."""
        n = int(features01_sorted.shape[0])
        rng = rng if rng is not None else np.random.default_rng(n)
        return {"masked": mask_points(n, self.cfg.mask_ratio, rng)}

    # ------------------------------------------------------------------ targets from features
    def target_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """[T] int64 codebook index of every point of packed features [.., T, 4]."""
        x = token_features(features).reshape(-1, N_TOKEN_FEATURES)
        if self.vq is not None:
            return self.vq.assign(x)
        if self.centres is None:
            raise ValueError(
                "objective mpm: no codebook; fit_baselines on training samples first (the trainer does)"
            )
        return assign_tokens(x, self.centres)

    def _masked(self, batch: PackedBatch, device: torch.device) -> torch.Tensor:
        return batch.targets["masked"].reshape(-1).to(device, torch.bool)  # [T]

    def loss(self, pred: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """Cross-entropy (tokens) or MSE (regression) on the masked points, averaged per event."""
        pred = self.flat_pred(pred, batch)
        masked = self._masked(batch, pred.device)
        if self.tokens:
            per = F.cross_entropy(pred, self.target_tokens(batch.features).to(pred.device), reduction="none")
        else:
            target = token_features(batch.features).reshape(-1, N_TOKEN_FEATURES).to(pred.device)
            per = (pred - target).square().mean(-1)
        per = torch.where(masked, per, 0.0)  # where, not a product: an unmasked target cannot move it
        return self.event_mean(per, masked.to(per.dtype), batch)

    def coordinate_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """No per-coordinate report: an empty vector and a zero count."""
        return torch.zeros(0, dtype=torch.float32, device=pred.device), torch.zeros((), device=pred.device)

    # ------------------------------------------------------------------ baselines and metrics
    def fit_baselines(self, samples: list[Sample]) -> dict[str, Any]:
        """Fit the codebook (tokens) on the samples' points, then the trivial predictor: the marginal token
        log-frequency (its validation loss is the marginal token entropy) or the mean features."""
        pts = sample_points([s.features for s in samples], self.cfg.codebook_points)
        feats = token_features(pts)
        if not self.tokens:
            if feats.shape[0] == 0:
                raise ValueError(
                    "objective.mpm_target=regression: no training points; check data.train_split"
                )
            return {"mean": {"row": feats.mean(0).tolist()}}
        if self.cfg.mpm_target == "vqvae":
            self.vq = VQTokenizer(self.cfg.codebook_size).fit(feats).eval()
            stored: dict[str, Any] = {"vqvae": self.vq.to_json()}
        else:
            self.centres = fit_kmeans(feats, self.cfg.codebook_size)
            stored = {"codebook": self.centres.tolist()}
        counts = torch.bincount(self.target_tokens(pts), minlength=self.cfg.codebook_size)
        freq = (counts.double() + 0.5) / (counts.sum() + 0.5 * counts.numel())  # no code at probability 0
        return {"marginal": {"row": freq.log().tolist(), **stored}}

    def baseline_predictor(self, table: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        if "codebook" in table and self.centres is None:  # a stored run: the codebook comes back with it
            self.centres = torch.tensor(table["codebook"], dtype=torch.float32)
        if "vqvae" in table and self.vq is None:
            self.vq = VQTokenizer.from_json(table["vqvae"])
        return ConstantPredictor(table["row"])

    def metrics(self, pred: torch.Tensor, batch: PackedBatch) -> dict[str, float]:
        """Masked top-1 accuracy, the most frequent masked token's rate and the codebook perplexity over all
        points of the batch (tokens only)."""
        tok = self.target_tokens(batch.features).to(pred.device)
        masked = self._masked(batch, pred.device)
        hit = pred.reshape(tok.shape[0], -1).argmax(-1) == tok
        counts = torch.bincount(tok[masked], minlength=self.out_dim)
        n = max(int(masked.sum()), 1)
        return {
            "top1": float(hit[masked].sum()) / n,
            "majority_rate": float(counts.max()) / n,
            "perplexity": perplexity(tok, self.out_dim),
        }
