"""The supervised reference: per-point particle ID (5 classes) and noise from the truth labels, in the same
encoder. It USES LABELS (`uses_labels`; the run's summary says so): it is the ceiling the self-supervised
objectives are compared with, not a pretraining method.

Loss per point: cross-entropy of the PID logits (0 other, 1 pion, 2 kaon, 3 proton, 4 electron) plus that of
the noise logits (2 classes), averaged per event then over events. The trivial predictor gives every point
the training marginal of each label: its loss is the sum of the two marginal entropies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from scaling.objectives.base import Objective, register
from scaling.objectives.baseline import ConstantPredictor

if TYPE_CHECKING:
    from scaling.inputs.batch import PackedBatch, Sample

N_PID, N_NOISE = 5, 2


@register("supervised")
class SupervisedObjective(Objective):
    """Classify every spacepoint's particle species and noise flag (uses labels)."""

    coordinates: tuple[str, ...] = ()
    uses_labels = True
    uses_difficulty = False

    @property
    def slots(self) -> int:
        return 1

    @property
    def out_dim(self) -> int:
        return N_PID + N_NOISE

    def build_targets(
        self,
        features01_sorted: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        labels: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """{"pid": (n,) int64, "noise": (n,) int64} in serialised order."""
        if labels is None:
            raise ValueError("objective.name=supervised needs the truth labels (pid, noise) of each event")
        pid, noise = np.asarray(labels["pid"], np.int64), np.asarray(labels["noise"], np.int64)
        if pid.size and (pid.min() < 0 or pid.max() >= N_PID or noise.min() < 0 or noise.max() > 1):
            raise ValueError(
                "objective.name=supervised: pid must be in 0..4 and noise in {0, 1}; check the dataset"
            )
        return {"pid": pid, "noise": noise}

    def loss(self, pred: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        pred = self.flat_pred(pred, batch)
        pid = batch.targets["pid"].reshape(-1).to(pred.device)
        noise = batch.targets["noise"].reshape(-1).to(pred.device)
        per = F.cross_entropy(pred[:, :N_PID], pid, reduction="none")
        per = per + F.cross_entropy(pred[:, N_PID:], noise, reduction="none")
        return self.event_mean(per, torch.ones_like(per), batch)

    def coordinate_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(0, dtype=torch.float32, device=pred.device), torch.zeros((), device=pred.device)

    def fit_baselines(self, samples: list[Sample]) -> dict[str, Any]:
        """The marginal label frequencies as constant logits."""
        pid = np.concatenate([s.targets["pid"] for s in samples]) if samples else np.zeros(0, np.int64)
        if pid.size == 0:
            raise ValueError("objective.name=supervised: no labelled training points; check data.train_split")
        noise = np.concatenate([s.targets["noise"] for s in samples])
        rows = []
        for values, k in ((pid, N_PID), (noise, N_NOISE)):
            counts = np.bincount(values, minlength=k) + 0.5
            rows.extend(np.log(counts / counts.sum()).tolist())
        return {"marginal": {"row": rows}}

    def baseline_predictor(self, table: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        return ConstantPredictor(table["row"])

    def accuracy(self, pred: torch.Tensor, batch: PackedBatch) -> dict[str, float]:
        """Per-point PID and noise accuracy."""
        pred = pred.reshape(batch.n_tokens, -1)
        pid, noise = batch.targets["pid"].reshape(-1), batch.targets["noise"].reshape(-1)
        return {
            "pid": float((pred[:, :N_PID].argmax(-1).cpu() == pid).float().mean()),
            "noise": float((pred[:, N_PID:].argmax(-1).cpu() == noise).float().mean()),
        }
