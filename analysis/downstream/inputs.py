"""What an adapter reads: which backbone layers, standardised per dimension with training-split statistics.

Backbone layers (`DownstreamConfig.layers`), on the residual stream h_0 = embedding(x),
h_i = block_i(h_{i-1}):

    last      RMSNorm_f(h_L), what the pretraining head reads (the default; FM4NPP's adapters read it)
    prenorm   h_L, the residual stream before the final RMSNorm
    "0,2,4"   the concatenation of h_0, h_2, h_4 (indices 0..L; one index reads one layer)
    mix       every h_0..h_L, combined in the adapter by a learned softmax-weighted sum (a scalar mix)

Why not only `last`: the final RMSNorm divides every point by its own RMS, and with a heavy-tailed energy
column that RMS is set by the energy, so position information shrinks on high-deposit points (a linear probe
recovers eta to RMS 0.0066 before the norm but 0.062 after it, on the quickstart backbone).

Standardisation: every dimension the adapter reads is shifted and scaled by the mean and std over the points
of the training events (the label budget), computed once and stored with the run (`input_stats.json`), then
applied alike to the training and the test events. It is a fixed layer (buffers, no parameters) in front of
the adapter, so the same holds for raw inputs (AdapterOnly) and for features of a backbone that is being
fine-tuned (their statistics at the start of training).

    >>> spec = parse_layers("prenorm", n_layers=4)
    >>> h = layer_features(model, x, seq_idx, spec)          # [B, T, width]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.downstream.config import LAYER_WORDS, LayerSpec, parse_layers  # noqa: F401 - exported here too


def layer_features(
    model: Any, x: torch.Tensor, seq_idx: torch.Tensor | None, spec: LayerSpec
) -> torch.Tensor:
    """Features of a PointModel (B, T, 4) -> (B, T, width * spec.n_blocks), walking its modules."""
    if spec.kind == "last":
        return model.backbone_features(x, seq_idx)
    if spec.kind == "prenorm":
        return model.backbone_features(x, seq_idx, final_norm=False)
    if seq_idx is not None:
        seq_idx = seq_idx.to(torch.int32)
    h = model.embedding(x)
    rev = None
    if model.cfg.direction == "bidirectional":  # the reverse scans' gather index, as backbone_features
        from scaling.model.ssd import reverse_within_segments

        rev = reverse_within_segments(seq_idx, h.shape[0], h.shape[1], h.device)
    keep = [h]
    for layer in model.layers:
        h = layer(h, seq_idx, rev)
        keep.append(h)
    if spec.kind == "prenorm":
        return h
    return torch.cat(keep if spec.kind == "mix" else [keep[i] for i in spec.indices], dim=-1)


def fit_standardizer(features: list[np.ndarray]) -> dict[str, Any]:
    """Per-dimension mean and std over every point of `features` (float64 sums; std floored at 1e-6)."""
    total = sum(int(f.shape[0]) for f in features)
    if total == 0:
        raise ValueError("cannot standardise adapter inputs: the training events hold no points")
    s = sum(np.asarray(f, np.float64).sum(0) for f in features)
    mean = s / total
    var = sum(((np.asarray(f, np.float64) - mean) ** 2).sum(0) for f in features) / total
    std = np.sqrt(var)
    return {"mean": mean.tolist(), "std": np.where(std > 1e-6, std, 1.0).tolist(), "n_points": total}


class Standardize(nn.Module):
    """x -> (x - mean) / std with fixed buffers (identity until `set_stats`)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))

    def set_stats(self, stats: dict[str, Any]) -> None:
        self.mean.copy_(torch.as_tensor(stats["mean"], dtype=torch.float32))
        self.std.copy_(torch.as_tensor(stats["std"], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LayerMix(nn.Module):
    """Softmax-weighted sum of `n` equal-width blocks of the last dimension, times a learned scale."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.logits = nn.Parameter(torch.zeros(n))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = x.unflatten(-1, (self.n, -1))  # [..., n, w]
        return self.scale * (blocks * self.logits.softmax(0)[:, None]).sum(-2)  # [..., w]


class InputAdapter(nn.Module):
    """The adapter behind its fixed input standardisation and, for `layers=mix`, the learned layer mix."""

    def __init__(self, head: nn.Module, d_in: int, n_mix: int = 1) -> None:
        super().__init__()
        self.standardize = Standardize(d_in)
        self.mix = LayerMix(n_mix) if n_mix > 1 else None
        self.head = head

    def forward(self, x: torch.Tensor, valid: torch.Tensor):  # noqa: ANN201 (the head's outputs)
        h = self.standardize(x)
        return self.head(h if self.mix is None else self.mix(h), valid)
