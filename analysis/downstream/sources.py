"""Where point features come from: a frozen pretrained backbone, or the raw normalised inputs (AdapterOnly).

Both return, per event, features [n, d] in the event's original point order, and both build the model's
inputs through the trainer's own `scaling.inputs.pipeline.prepare_event` (normalisation with the manifest
statistics, then serialisation), so an input option added there reaches the adapters and probes too. The
backbone sees the points in its training serialisation order (FM4NPP: hierarchical raster scan), so its output
is scattered back with the inverse permutation; `tests/unit/test_downstream_features.py` and the integration
test check this.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.downstream.features import hash_key, unpermute
from scaling.data.schema import Event

log = logging.getLogger(__name__)


class _NoTargets:
    """The objective slot of `prepare_event` when only the model's inputs are wanted: no augmentation (a
    frozen backbone reads the event as it is), no labels, no targets."""

    uses_labels = False

    def augment(self, event: Event, rng: np.random.Generator | None) -> Event:
        return event

    def build_targets(self, features01_sorted: np.ndarray, **_: Any) -> dict[str, np.ndarray]:
        return {}

    def event_weight(self, targets: dict[str, np.ndarray]) -> float:
        return 1.0


def model_inputs(event: Event, normalizer: Any, serialization: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, 4) float32 in serialised order, perm (n,) int64) exactly as the trainer builds them."""
    from scaling.inputs.pipeline import prepare_event

    rng = np.random.default_rng(event.event_id)  # used by the 'random' order only
    sample = prepare_event(event, normalizer=normalizer, serialization=serialization,
                           objective=_NoTargets(), rng=rng)  # type: ignore[arg-type]  # fmt: skip
    return np.asarray(sample.features, dtype=np.float32), np.asarray(sample.perm, dtype=np.int64)


class RawSource:
    """The model's input columns [e, r01, phi01, eta01], normalised with the dataset statistics and, given a
    run's data config, that run's input options (`data.energy_feature`); without one, the defaults."""

    width = 4

    def __init__(
        self,
        stats: dict[str, Any],
        data_cfg: Any = None,
        *,
        energy: str = "standard",
        stem_width: int | None = None,
    ) -> None:
        from scaling.inputs.coordinates import Normalizer
        from scaling.train.batches import build_normalizer

        if data_cfg is not None:  # a run's own input options
            self.normalizer = build_normalizer(data_cfg, stats)
            energy = data_cfg.energy_feature
        else:
            self.normalizer = Normalizer.from_stats(stats, energy=energy)
        self.stem_width = stem_width  # AdapterOnly beside a backbone: the stem as wide as the backbone
        extra = () if energy == "standard" else (energy,)
        self.key = "raw-" + hash_key(json.dumps(stats, sort_keys=True, default=str), *extra)

    def extract(self, events: list[Event]) -> list[np.ndarray]:
        return [unpermute(*model_inputs(ev, self.normalizer, "raster")) for ev in events]


def checkpoint_key(path: str | Path, step: int | None) -> str:
    """Cache key of a checkpoint: its resolved step folder plus the size and time of every file in it."""
    from scaling.train.checkpoint import resolve_checkpoint

    try:
        folder = resolve_checkpoint(path, step).resolve()
    except FileNotFoundError as err:
        raise ValueError(f"{err}; check backbone= and step=") from None
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    stamp = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    return "bb-" + hash_key(folder, stamp)


def _serialization_order(train_cfg: Any) -> str:
    return str(getattr(train_cfg, "serialization", "raster"))


def backbone_width(train_cfg: Any) -> int:
    """d_model of a pretraining config (a named model's width filled in)."""
    from scaling.model import resolve_model_config

    return int(resolve_model_config(train_cfg.model).width)


def backbone_depth(train_cfg: Any) -> int:
    """n_layers of a pretraining config (a named model's depth filled in)."""
    from scaling.model import resolve_model_config

    return int(resolve_model_config(train_cfg.model).n_layers)


def input_normalizer(train_cfg: Any, stats: dict[str, Any]) -> Any:
    """The backbone's own input normalisation (its input options, e.g. the energy feature), as its trainer."""
    from scaling.train.batches import build_normalizer

    return build_normalizer(train_cfg.data, stats)


class BackboneSource:
    """Features of a frozen pretrained backbone: by default after its final norm, before the pretraining head;
    `layers` picks others (analysis.downstream.inputs: prenorm, layer indices, all layers for a mix).

    Built with `load`, the weights are read only when features must be computed (a cache hit never loads
    them); the backbone is put in eval mode with `requires_grad_(False)` and only ever run under no_grad.
    `random_init` initialises the run's network as the trainer does (its config and seed) and never trains it.
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        train_cfg: Any,
        stats: dict[str, Any],
        key: str,
        checkpoint: tuple[str | Path, int | None] | None = None,
        layers: str = "last",
    ) -> None:
        from analysis.downstream.inputs import parse_layers

        self._model = None if model is None else model.eval().requires_grad_(False)
        self.checkpoint = checkpoint
        self.train_cfg = train_cfg
        self.stats = stats
        self.order = _serialization_order(train_cfg)
        self.normalizer = input_normalizer(train_cfg, stats)
        self.layers = parse_layers(layers, backbone_depth(train_cfg))
        self.width = backbone_width(train_cfg) * self.layers.n_blocks(backbone_depth(train_cfg))
        # what is read (and how inputs are normalised) is part of the cache key, beside the checkpoint's
        self.key = (
            key
            if layers == "last" and self.normalizer.energy == "standard"
            else (f"{key}-{hash_key(layers, self.normalizer.energy)}")
        )

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            from scaling.train.checkpoint import load_frozen_model

            if self.checkpoint is None:
                raise RuntimeError("BackboneSource has neither a model nor a checkpoint to load")
            model, _ = load_frozen_model(*self.checkpoint)
            device = "cuda" if torch.cuda.is_available() else "cpu"  # mamba_ssm kernels on a GPU
            self._model = model.to(device).eval().requires_grad_(False)
        return self._model

    @classmethod
    def load(
        cls,
        path: str | Path,
        step: int | None,
        stats: dict[str, Any],
        *,
        expect_width: int | None = None,
        expect_objective: str | None = None,
        layers: str = "last",
    ) -> BackboneSource:
        """Check a checkpoint's config (width, objective) against what the run expects; weights come later."""
        import yaml

        from scaling.config import from_dict
        from scaling.train.checkpoint import resolve_checkpoint
        from scaling.train.config import TrainConfig

        key = checkpoint_key(path, step)
        cfg_path = resolve_checkpoint(path, step) / "config.yaml"
        train_cfg = from_dict(TrainConfig, yaml.safe_load(cfg_path.read_text()), source=str(cfg_path))
        width = backbone_width(train_cfg)
        if expect_width is not None and width != expect_width:
            raise ValueError(
                f"{path}: backbone width is {width}, the downstream config expects {expect_width}; "
                "point backbone= at the right checkpoint or fix expect_width"
            )
        objective = str(train_cfg.objective.name)
        if expect_objective is not None and objective != expect_objective:
            raise ValueError(
                f"{path}: backbone was pretrained with objective {objective!r}, the downstream config "
                f"expects {expect_objective!r}; point backbone= at the right checkpoint"
            )
        return cls(None, train_cfg, stats, key, checkpoint=(path, step), layers=layers)

    @classmethod
    def random_init(cls, train_cfg: Any, stats: dict[str, Any], *, layers: str = "last") -> BackboneSource:
        """The run's network as the trainer initialises it (its config and seed), with no training."""
        from scaling.model import build_model
        from scaling.objectives import build_objective

        torch.manual_seed(int(train_cfg.seed))  # as the trainer's seed_everything before build_model
        objective = build_objective(train_cfg.objective)
        model = build_model(train_cfg.model, out_dim=objective.out_dim, **objective.model_options())
        model = model.to("cuda" if torch.cuda.is_available() else "cpu")  # as `model` places a checkpoint
        key = "init-" + hash_key(json.dumps(dataclasses.asdict(train_cfg.model), sort_keys=True, default=str),
                                 train_cfg.seed)  # fmt: skip
        return cls(model, train_cfg, stats, key, layers=layers)

    @torch.no_grad()
    def extract(self, events: list[Event]) -> list[np.ndarray]:
        from analysis.downstream.inputs import layer_features

        feats, perms = [], []
        for ev in events:
            f, perm = model_inputs(ev, self.normalizer, self.order)  # (n, 4) serialised, (n,)
            feats.append(f)
            perms.append(perm)
        lengths = [len(p) for p in perms]
        # Pack the events along one sequence; seq_idx keeps the state-space scan from crossing events.
        x = torch.from_numpy(np.concatenate(feats))[None]  # [1, T, 4]
        seq_idx = torch.repeat_interleave(
            torch.arange(len(events), dtype=torch.int32), torch.tensor(lengths)
        )[None]  # [1, T]
        device = next(self.model.parameters()).device
        h = layer_features(self.model, x.to(device), seq_idx.to(device), self.layers)
        h = h[0].float().cpu().numpy()  # [T, width]
        bounds = np.cumsum([0, *lengths])
        return [
            unpermute(h[bounds[i] : bounds[i + 1]], perms[i]) for i in range(len(events))
        ]  # each (n_i, width), original point order
