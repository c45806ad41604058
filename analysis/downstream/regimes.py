"""The four downstream regimes (the masked-particle-modelling paper's Fixed / Fine-tuned / From scratch, and
FM4NPP's AdapterOnly), each as the model one run trains:

    frozen        features of the pretrained backbone, computed once and cached; only the adapter trains
    finetune      the pretrained backbone in the network, trained too: its muP parameter groups at
                  `backbone_lr_ratio` x the adapter's learning rate
    scratch       the same network (backbone config, layers read, adapter) from random initialisation
    adapter_only  a linear stem on the raw inputs in place of the backbone (with a backbone given: as wide
                  as that backbone, so the adapters are equal in size)

A trainable backbone must see its points in serialisation order while the adapter and the labels keep the
event's own order, so its inputs carry a fifth column, each point's position in the serialisation
(`RankedRawSource`); `FullNetwork` sorts by it, runs the backbone and scatters the features back.
In every regime the adapter reads standardised inputs (analysis.downstream.inputs); the statistics come from
the training events only: of the cached features, of the raw inputs, or of the trainable backbone's features
at initialisation.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.downstream.features import LabelledSplit, hash_key
from analysis.downstream.inputs import InputAdapter, LayerSpec, fit_standardizer, layer_features, parse_layers
from analysis.downstream.sources import backbone_depth, input_normalizer
from analysis.downstream.train import (
    ADAPTER_ONLY,
    DownstreamConfig,
    build_run_model,
    make_batch,
    resolve_device,
    run_regime,
)
from scaling.data.schema import Event


class RankedRawSource:
    """Normalised inputs [e, r01, phi01, eta01] in original point order, then each point's serialised rank."""

    width = 5

    def __init__(self, train_cfg: Any, stats: dict[str, Any]) -> None:
        self.train_cfg = train_cfg
        self.normalizer = input_normalizer(train_cfg, stats)
        self.order = str(getattr(train_cfg, "serialization", "raster"))
        self.stats = stats
        blob = json.dumps(stats, sort_keys=True, default=str)
        self.key = "rank-" + hash_key(blob, self.order, self.normalizer.energy)

    def extract(self, events: list[Event]) -> list[np.ndarray]:
        from scaling.inputs.serialization import serialize

        out = []
        for ev in events:
            f = np.asarray(self.normalizer.features(ev.points), dtype=np.float32)  # (n, 4)
            rng = np.random.default_rng(ev.event_id)  # the 'random' order, as BackboneSource draws it
            perm = np.asarray(serialize(f, self.order, self.stats, rng=rng), dtype=np.int64)
            rank = np.empty(len(perm), dtype=np.float32)
            rank[perm] = np.arange(len(perm), dtype=np.float32)
            out.append(np.concatenate([f, rank[:, None]], axis=1))  # (n, 5)
        return out


class FullNetwork(nn.Module):
    """Trainable backbone -> chosen layers -> standardisation (-> layer mix) -> adapter."""

    def __init__(self, backbone: nn.Module, spec: LayerSpec, adapter: InputAdapter) -> None:
        super().__init__()
        self.backbone = backbone.train()
        self.backbone.head.requires_grad_(False)  # the pretraining head is not part of the downstream network
        self.spec = spec
        self.adapter = adapter

    def features(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, L, 5] (original order, last column = serialisation rank) -> backbone features [B, L, d]."""
        rank = x[..., 4].masked_fill(
            ~valid, float("inf")
        )  # padding sorts last: the causal scan never sees it
        order = rank.argsort(dim=1)  # [B, L]
        xs = x[..., :4].gather(1, order[..., None].expand(-1, -1, 4))  # serialised order
        h = layer_features(self.backbone, xs, None, self.spec)  # [B, L, d]
        back = order.argsort(dim=1)
        return h.gather(1, back[..., None].expand(-1, -1, h.shape[-1]))  # original order

    def forward(self, x: torch.Tensor, valid: torch.Tensor):  # noqa: ANN201 (the adapter's outputs)
        return self.adapter(self.features(x, valid), valid)

    def param_groups(self, lr: float, weight_decay: float, backbone_ratio: float) -> list[dict[str, Any]]:
        """The backbone's muP groups at lr * backbone_ratio, then the adapter's parameters at lr."""
        from scaling.train.param_groups import build_param_groups

        groups = build_param_groups(self.backbone, self.backbone.cfg, lr * backbone_ratio, weight_decay)
        for g in groups:
            g["name"] = f"backbone.{g['name']}"
        adapter = [p for p in self.adapter.parameters() if p.requires_grad]
        return [*groups, {"params": adapter, "lr": lr, "weight_decay": weight_decay, "name": "adapter"}]


def build_backbone(cfg: DownstreamConfig, train_cfg: Any) -> nn.Module:
    """finetune: the checkpoint's weights; scratch: the same config freshly initialised (seed cfg.seed)."""
    from scaling.model import build_model, resolve_model_config
    from scaling.objectives import build_objective
    from scaling.train.checkpoint import load_frozen_model

    if cfg.regime == "finetune":
        model, _ = load_frozen_model(cfg.backbone, cfg.step)
    else:
        torch.manual_seed(cfg.seed)
        model = build_model(
            resolve_model_config(train_cfg.model), out_dim=build_objective(train_cfg.objective).out_dim
        )
    return model.requires_grad_(True)


@torch.no_grad()
def initial_features(model: FullNetwork, data: LabelledSplit, batch_events: int) -> list[np.ndarray]:
    """The network's backbone features of every event at its initial weights (for the standardisation)."""
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    for start in range(0, len(data), batch_events):
        idx = list(range(start, min(start + batch_events, len(data))))
        b = make_batch(data, idx, "pid")
        h = model.features(b.x.to(device), b.valid.to(device)).float().cpu().numpy()
        out += [h[row, : data.features[i].shape[0]] for row, i in enumerate(idx)]
    return out


def build_regime_model(
    cfg: DownstreamConfig, width: int, train: LabelledSplit, source: Any = None
) -> tuple[nn.Module, dict[str, Any]]:
    """(model, input statistics) for this run's regime; the statistics come from `train` only and are already
    loaded into the model's standardisation layer (identity when cfg.standardize is off)."""
    regime = run_regime(cfg)
    if regime in ("finetune", "scratch"):
        depth = backbone_depth(source.train_cfg)
        spec = parse_layers(cfg.layers, depth)
        backbone = build_backbone(cfg, source.train_cfg)
        d = int(backbone.cfg.width) * spec.n_blocks(depth)
        head = build_run_model(cfg, d, n_mix=spec.n_blocks(depth) if spec.kind == "mix" else 1)
        model = FullNetwork(backbone, spec, head).to(resolve_device(cfg.device))
        feats = initial_features(model, train, cfg.budget.batch_events) if cfg.standardize else []
        target = head
    else:
        n_mix = 1
        if regime == "frozen" and getattr(source, "layers", None) is not None and source.layers.kind == "mix":
            n_mix = source.layers.n_blocks(backbone_depth(source.train_cfg))
        stem = getattr(source, "stem_width", None) if regime == ADAPTER_ONLY else None
        model = build_run_model(cfg, width, n_mix=n_mix, stem=stem)
        feats, target = train.features, model
    stats = fit_standardizer(feats) if cfg.standardize else {"mean": None, "std": None, "n_points": 0}
    if cfg.standardize:
        target.standardize.set_stats(stats)
    return model, {**stats, "split": cfg.train_split, "n_events": len(train), "regime": regime}
