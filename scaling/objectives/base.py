"""Objective interface, its config and the name registry.

An objective is a target builder (numpy, per event, on the serialised normalised features) and a loss (torch,
on a packed batch). Adding one is one file: subclass `Objective`, decorate it with `@register("name")`, and
import it in `scaling/objectives/__init__.py`.

Targets are a dict of arrays. Arrays with a leading token axis (n, ...) are concatenated over the events of a
packed batch; 0-d arrays are per-event scalars and are stacked to (n_events,). Every objective reports two
per-event scalars, "difficulty" and "proxy", used by the difficulty rescaling (see difficulty.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from scaling.objectives.config import ObjectiveConfig
from scaling.objectives.difficulty import check_difficulty_table, difficulty_weight, fit_difficulty_table

if TYPE_CHECKING:
    from scaling.inputs.pipeline import PackedBatch, Sample

REGISTRY: dict[str, type[Objective]] = {}
__all__ = ["REGISTRY", "Objective", "ObjectiveConfig", "build_objective", "register"]


def register(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator adding an objective to the registry under `name`."""

    def add(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return add


def build_objective(cfg: ObjectiveConfig) -> Objective:
    """The objective named by `cfg.name`."""
    if cfg.name not in REGISTRY:
        raise ValueError(f"objective.name: unknown objective {cfg.name!r}; choose one of {sorted(REGISTRY)}")
    return REGISTRY[cfg.name](cfg)


class Objective:
    """Target builder + loss; subclasses define `out_dim`, `build_targets` and `token_errors`."""

    name = "base"

    def __init__(self, cfg: ObjectiveConfig) -> None:
        self.cfg = cfg
        self.difficulty_table: dict[str, Any] | None = None

    @property
    def out_dim(self) -> int:
        raise NotImplementedError

    def build_targets(self, features01_sorted: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def token_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of squared errors [T], number of valid target scalars [T]) for pred [T, out_dim]."""
        raise NotImplementedError

    def loss(self, pred: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """Batch mean of weighted per-event MSE; events without any valid target add 0 (never NaN)."""
        pred = pred.reshape(-1, pred.shape[-1])  # [1, T, D] or [T, D] -> [T, D]
        if pred.shape != (batch.n_tokens, self.out_dim):
            raise ValueError(
                f"{self.name} loss: pred has shape {tuple(pred.shape)}, "
                f"expected ({batch.n_tokens}, {self.out_dim})"
            )
        sq, cnt = self.token_errors(pred.float(), batch.targets)  # [T], [T]
        seq = batch.seq_idx.reshape(-1).to(sq.device, torch.long)  # [T]
        sq_e = torch.zeros(batch.n_events, dtype=sq.dtype, device=sq.device).index_add(0, seq, sq)
        cnt_e = torch.zeros(batch.n_events, dtype=sq.dtype, device=sq.device).index_add(0, seq, cnt)
        has = cnt_e > 0
        mse_e = sq_e / cnt_e.clamp_min(1.0)  # [E]
        w = batch.weights.to(sq.device, sq.dtype) * has
        return (w * mse_e).sum() / has.sum().clamp_min(1)

    def event_weight(self, targets: dict[str, np.ndarray]) -> float:
        """Difficulty weight of one event (1.0 when rescaling is off or no table was fitted)."""
        if not self.cfg.difficulty_rescaling:
            return 1.0
        return difficulty_weight(self.difficulty_table, float(targets["difficulty"]))

    def fit_difficulty(self, samples: Iterable[Sample]) -> dict[str, Any]:
        """Fit (and keep) the difficulty table from prepared training samples; returns the JSON-able table."""
        diff, proxy = [], []
        for s in samples:
            diff.append(float(s.targets["difficulty"]))
            proxy.append(float(s.targets["proxy"]))
        self.difficulty_table = fit_difficulty_table(
            np.asarray(diff), np.asarray(proxy), self.cfg.difficulty_bins
        )
        return self.difficulty_table

    def load_difficulty(self, table: dict[str, Any]) -> None:
        """Restore a table saved by the trainer."""
        check_difficulty_table(table)
        self.difficulty_table = table
