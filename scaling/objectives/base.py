"""Objective interface, its config and the name registry.

An objective is a target builder (numpy, per event, on the serialised normalised features) and a loss (torch,
on a packed batch). Adding one is one file: subclass `Objective`, decorate it with `@register("name")`, and
import it in `scaling/objectives/__init__.py`.

Targets are a dict of arrays. Arrays with a leading token axis (n, ...) are concatenated over the events of a
packed batch; 0-d arrays are per-event scalars and are stacked to (n_events,). Every objective reports two
per-event scalars, "difficulty" and "proxy", used by the difficulty rescaling (see difficulty.py).

Objectives whose targets are not offsets (mpm, contrastive, supervised) override `build_targets`, `loss`,
`fit_baselines` and `baseline_predictor`, and may declare what they need of the rest: `model_options` (a mask
token, the order-head), `model_inputs` (the mask of a batch), `augment` and `n_views` (contrastive views),
`uses_labels` (truth in serialised order), `causal_only` (a bidirectional backbone would see the targets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from scaling.objectives.baseline import LookupPredictor, fit_lookup_baselines
from scaling.objectives.config import GEOMETRY_KEYS, ObjectiveConfig, check_backbone
from scaling.objectives.difficulty import check_difficulty_table, difficulty_weight, fit_difficulty_table
from scaling.objectives.scaling import check_target_stats, fit_target_stats, scale_targets
from scaling.registry import Registry

if TYPE_CHECKING:
    from scaling.data.schema import Event
    from scaling.inputs.batch import PackedBatch, Sample

REGISTRY: Registry[type[Objective]] = Registry(
    "objective", unknown="objective.name: unknown objective {name!r}; choose one of {sorted}"
)
__all__ = ["REGISTRY", "Objective", "ObjectiveConfig", "build_objective", "check_backbone", "register"]


def register(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator adding an objective to the registry under `name` (a taken name is an error)."""

    def add(cls: type[Objective]) -> type[Objective]:
        REGISTRY.add(name, cls)
        cls.name = name
        return cls

    return add


def build_objective(cfg: ObjectiveConfig) -> Objective:
    """The objective named by `cfg.name`."""
    return REGISTRY.lookup(cfg.name)(cfg)


class Objective:
    """Target builder + loss; subclasses define `slots`, `coordinates` and `build_raw_targets`.

    Targets are laid out as `target` (n, slots * len(coordinates)) with `mask` (n, slots): every objective
    here predicts a few points (slots) of a few coordinates each, which is what the target scaling, the
    lookup baseline (baseline.py) and the per-coordinate ratios read."""

    name = "base"
    coordinates: tuple[str, ...] = ("dr", "dphi", "deta")
    causal_only = False  # targets are later points: a bidirectional backbone would see them
    uses_labels = False  # targets come from the truth labels (a supervised reference, not pretraining)
    uses_difficulty = True  # per-event difficulty weights (paper B.7) apply
    n_views = 1  # samples made of each event (contrastive: two augmented views)
    metric_names: tuple[
        str, ...
    ] = ()  # figures of `metrics(pred, batch)`, logged as val_<name> by validation

    def metrics(self, pred: torch.Tensor, batch: Any) -> dict[str, float]:
        """Figures beside the loss (named in `metric_names`), each a mean over the batch's scored points."""
        return {}

    def __init__(self, cfg: ObjectiveConfig) -> None:
        self.cfg = cfg
        self.difficulty_table: dict[str, Any] | None = None
        self.target_stats: dict[str, Any] | None = None
        self.geometry: dict[str, float] | None = None
        self._unscaled = False

    @property
    def slots(self) -> int:
        raise NotImplementedError

    @property
    def out_dim(self) -> int:
        return self.slots * len(self.coordinates)

    def bind_stats(self, stats: dict[str, Any]) -> None:
        """Take the dataset's normalisation ranges (the physical metric converts back to centimetres)."""
        self.geometry = {key: float(stats[key]) for key in GEOMETRY_KEYS if key in stats}
        if self.cfg.metric == "physical":
            missing = [key for key in GEOMETRY_KEYS if key not in self.geometry]
            if missing:
                raise ValueError(
                    f"objective.metric=physical: manifest stats lack {missing}; rewrite the dataset with the "
                    "current `python -m scaling.data` or use objective.metric=normalised"
                )

    def build_raw_targets(self, features01_sorted: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def model_options(self) -> dict[str, Any]:
        """What the objective asks of the model (`build_model` keywords): its head and a mask token."""
        return {"head": "linear", "mask_token": False}

    def model_inputs(self, batch: PackedBatch) -> dict[str, torch.Tensor]:
        """Extra model inputs of a batch beside features and seq_idx (masked point modelling: the mask)."""
        return {}

    def augment(self, event: Event, rng: np.random.Generator | None) -> Event:
        """The event a sample is made of, before normalisation and serialisation (identity here)."""
        return event

    def build_targets(
        self,
        features01_sorted: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        labels: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """The raw targets, scaled with the fitted statistics when `target_scaling` is on. `rng` (the
        event's own generator) and `labels` (truth in serialised order, for `uses_labels` objectives) are
        for the objectives that need them."""
        targets = self.build_raw_targets(features01_sorted)
        if self.cfg.target_scaling != "none" and not self._unscaled:
            if self.target_stats is None:
                raise ValueError(
                    f"objective.target_scaling={self.cfg.target_scaling}: no statistics fitted; call "
                    "fit_target_stats on training samples (the trainer does) or set target_scaling: none"
                )
            targets["target"] = scale_targets(
                targets["target"], targets["mask"], self.target_stats, len(self.coordinates)
            )
        return targets

    @contextmanager
    def unscaled(self) -> Iterator[None]:
        """Targets as built, without the scaling (to fit its statistics)."""
        previous, self._unscaled = self._unscaled, True
        try:
            yield
        finally:
            self._unscaled = previous

    def scale(self, targets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Targets built under `unscaled()`, scaled now that the statistics are fitted (a new dict)."""
        if self.cfg.target_scaling == "none":
            return targets
        scaled = scale_targets(targets["target"], targets["mask"], self.target_stats, len(self.coordinates))
        return {**targets, "target": scaled}

    def fit_target_stats(self, raw_samples: Iterable[Sample]) -> dict[str, Any]:
        """Fit (and keep) the target scaling from samples built without it; returns the JSON-able stats."""
        self.target_stats = fit_target_stats(
            [(s.targets["target"], s.targets["mask"]) for s in raw_samples],
            self.slots,
            len(self.coordinates),
            self.cfg.target_scaling,
        )
        return self.target_stats

    def load_target_stats(self, stats: dict[str, Any]) -> None:
        check_target_stats(stats, self.slots, len(self.coordinates))
        self.target_stats = stats

    def fit_baselines(self, samples: list[Sample]) -> dict[str, Any]:
        """The objective's trivial predictors, fitted on training samples whose targets are final (scaled):
        {name: JSON-able table}. The first is the one `val_loss_ratio` divides by. Regression objectives
        here share the lookup tables of baseline.py; an objective with other targets overrides this and
        `baseline_predictor` (e.g. a classifier's marginal class frequencies)."""
        parts = [
            (s.features, self._offsets(s.features, s.targets["target"]), s.targets["mask"]) for s in samples
        ]
        return fit_lookup_baselines(parts, self.slots, len(self.coordinates))

    def baseline_predictor(self, table: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        """A fitted table as a function of packed features [.., T, 4] -> predictions [T, out_dim]."""
        lookup = LookupPredictor(table)
        if self.cfg.relative_targets:
            return lookup

        def predict(features: torch.Tensor) -> torch.Tensor:  # absolute targets: own position + offset
            f = features.reshape(-1, features.shape[-1])
            pred = lookup(features) + f[:, 1:4].float().repeat(1, self.slots)
            pred[:, 1::3] = torch.remainder(
                pred[:, 1::3], 1.0
            )  # phi is periodic: a neighbour past 1 is near 0
            return pred

        return predict

    def _offsets(self, features: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Targets as offsets from the point: unchanged for relative targets; for absolute ones (the paper's
        neighbour positions) minus the point's own (r, phi, eta), phi wrapped. The trivial predictor of an
        absolute target is the point's position plus the mean offset, not the mean position of a layer
        (which ignores where in phi and eta the point is)."""
        if self.cfg.relative_targets:
            return target
        own = np.tile(np.asarray(features, dtype=np.float64)[:, 1:4], (1, self.slots))  # [n, S*3]
        off = np.asarray(target, dtype=np.float64) - own
        off[:, 1::3] -= np.floor(off[:, 1::3] + 0.5)  # dphi into [-0.5, 0.5)
        return off

    def _penalty(self, diff: torch.Tensor) -> torch.Tensor:
        """Elementwise loss of prediction errors: squared (mse) or Huber (quadratic below delta, then linear,
        scaled so both agree for small errors: 2 x torch's huber_loss)."""
        if self.cfg.loss == "huber":
            d = self.cfg.huber_delta
            a = diff.abs()
            return torch.where(a <= d, diff.square(), 2.0 * d * a - d * d)
        return diff.square()

    def _errors(self, pred: torch.Tensor, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(diff [T, S, C], mask [T, S]) of predictions against targets."""
        c = len(self.coordinates)
        mask = targets["mask"].to(pred.device).reshape(pred.shape[0], -1)  # [T, S]
        diff = pred.view(-1, self.slots, c) - targets["target"].to(pred.device).view(-1, self.slots, c)
        return diff, mask

    def token_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of per-scalar losses [T], number of valid target scalars [T]) for pred [T, out_dim]."""
        diff, mask = self._errors(pred, targets)
        per = torch.where(mask[..., None], self._penalty(diff), 0.0)  # [T, S, C]
        return per.sum((-1, -2)), mask.sum(-1).to(pred.dtype) * len(self.coordinates)

    def coordinate_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared errors summed over tokens and slots per coordinate [C], and the valid count (scalar)."""
        diff, mask = self._errors(pred.float(), targets)
        sq = torch.where(mask[..., None], diff.square(), 0.0).sum((0, 1))  # [C]
        return sq, mask.sum().to(sq.dtype)

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

    def flat_pred(self, pred: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """[1, T, D] or [T, D] -> [T, D] float32; another shape is a ValueError naming both."""
        pred = pred.reshape(-1, pred.shape[-1]).float()
        if pred.shape != (batch.n_tokens, self.out_dim):
            expected = (batch.n_tokens, self.out_dim)
            raise ValueError(f"{self.name} loss: pred has shape {tuple(pred.shape)}, expected {expected}")
        return pred

    @staticmethod
    def event_mean(per_token: torch.Tensor, count: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """Batch mean over events of sum(per_token) / sum(count) per event (seq_idx); events with no count
        add 0 and are not counted (never NaN). Weighted by the batch's event weights."""
        seq = batch.seq_idx.reshape(-1).to(per_token.device, torch.long)  # [T]
        n = batch.n_events
        num = torch.zeros(n, dtype=per_token.dtype, device=per_token.device).index_add(0, seq, per_token)
        den = torch.zeros(n, dtype=per_token.dtype, device=per_token.device).index_add(0, seq, count)
        has = den > 0
        w = batch.weights.to(per_token.device, per_token.dtype) * has
        return (w * num / den.clamp_min(1.0)).sum() / has.sum().clamp_min(1)

    def event_weight(self, targets: dict[str, np.ndarray]) -> float:
        """Difficulty weight of one event (1.0 when rescaling is off or no table was fitted)."""
        if not self.cfg.difficulty_rescaling or not self.uses_difficulty:
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
