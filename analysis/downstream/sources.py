"""Where point features come from: a frozen pretrained backbone, or the raw normalised inputs (AdapterOnly).

Both return, per event, features [n, d] in the event's original point order. The backbone sees the points in
its training serialisation order (FM4NPP: hierarchical raster scan), so its output is scattered back with the
inverse permutation; `tests/unit/test_downstream_features.py` and the integration test check this.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.downstream.features import hash_key, unpermute
from scaling.data.schema import Event

log = logging.getLogger(__name__)


class RawSource:
    """The model's input columns [e_std, r01, phi01, eta01], normalised with the dataset statistics."""

    width = 4

    def __init__(
        self, stats: dict[str, Any], energy: str = "standard", stem_width: int | None = None
    ) -> None:
        from scaling.inputs.coordinates import Normalizer

        self.normalizer = Normalizer.from_stats(stats, energy=energy)
        self.stem_width = stem_width  # AdapterOnly beside a backbone: the stem as wide as the backbone
        extra = () if energy == "standard" else (energy,)
        self.key = "raw-" + hash_key(json.dumps(stats, sort_keys=True, default=str), *extra)

    def extract(self, events: list[Event]) -> list[np.ndarray]:
        return [np.asarray(self.normalizer.features(ev.points), dtype=np.float32) for ev in events]


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
    """The backbone's own input normalisation (its energy feature: standard or log), from its config."""
    from scaling.inputs.coordinates import Normalizer

    return Normalizer.from_stats(stats, energy=str(getattr(train_cfg.data, "energy_feature", "standard")))


class BackboneSource:
    """Features of a frozen pretrained backbone: by default after its final norm, before the pretraining head;
    `layers` picks others (analysis.downstream.inputs: prenorm, layer indices, all layers for a mix).

    Built with `load`, the weights are read only when features must be computed (a cache hit never loads
    them); the backbone is put in eval mode with `requires_grad_(False)` and only ever run under no_grad.
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

    @torch.no_grad()
    def extract(self, events: list[Event]) -> list[np.ndarray]:
        from analysis.downstream.inputs import layer_features
        from scaling.inputs.serialization import serialize

        feats, perms = [], []
        for ev in events:
            f = np.asarray(self.normalizer.features(ev.points), dtype=np.float32)  # (n, 4)
            rng = np.random.default_rng(ev.event_id)  # used by the 'random' order only
            perm = np.asarray(serialize(f, self.order, self.stats, rng=rng), dtype=np.int64)  # (n,)
            feats.append(f[perm])
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
