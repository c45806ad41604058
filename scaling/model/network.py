"""The point model: embedding -> n_layers x (x + Mamba2(RMSNorm(x))) -> RMSNorm -> Linear head.

    >>> model = build_model(resolve_model_config(ModelConfig(name="tiny")), out_dim=90)
    >>> model(features).shape          # features (B, L, 4) = [e_std, r01, phi01, eta01]
    torch.Size([B, L, 90])

The embedding sums Linear(energy) and Linear(NeRF(r, phi, eta)), with the NeRF encoding
gamma(p) = (p, sin(2^l pi p), cos(2^l pi p) for l < n_freq) (Mildenhall et al. 2020, eq. 4) of the
[0, 1]-normalised coordinates, as in the reference study's code.

`model.direction: bidirectional` adds a second mixer per layer (`mixer_rev`, the same mamba_ssm parameter
names) that scans each event backwards: the normed input is reversed within every event (seq_idx bounds),
scanned, and reversed back; the two scans are added (Vim) or concatenated and projected (`merge`).

Objective-specific parts, built only when asked (so other checkpoints keep their state_dict):
`mask_token=True` adds one learnable vector `embedding.mask_token` that replaces the whole input embedding
(energy and position) of every point flagged in `mask` (masked point modelling); `head="order"` is the
order-head of masked point modelling (Golling et al.): the head, not the backbone, also sees each point's
serialisation index within its event, through one small residual MLP block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scaling.model.config import ModelConfig, check_resolved
from scaling.model.mamba2 import build_mixer
from scaling.model.mup import apply_init
from scaling.model.ssd import reverse_within_segments, segment_bounds

N_FEATURES = 4
RMS_EPS = 1e-5
HEADS = ("linear", "order")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, device: torch.device | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, device=device))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS) * self.weight.float()).to(
            x.dtype
        )


def nerf_encoding(p: Tensor, n_freq: int) -> Tensor:
    """(..., 3) in [0, 1] -> (..., 3 (1 + 2 n_freq)): p, then sin and cos of 2^l pi p for each frequency l."""
    if n_freq == 0:
        return p
    freqs = (2.0 ** torch.arange(n_freq, device=p.device, dtype=p.dtype)) * math.pi  # (F,)
    angles = (p.unsqueeze(-1) * freqs).flatten(-2)  # (..., 3 F)
    return torch.cat([p, torch.sin(angles), torch.cos(angles)], dim=-1)


class PointEmbedding(nn.Module):
    """energy -> Linear(d_model); NeRF(r, phi, eta) -> Linear(d_model); summed."""

    def __init__(
        self, cfg: ModelConfig, device: torch.device | None = None, mask_token: bool = False
    ) -> None:
        super().__init__()
        self.n_freq = cfg.n_freq
        self.energy = nn.Linear(1, cfg.width, device=device)
        self.position = nn.Linear(cfg.n_pos_features, cfg.width, device=device)
        # N(0, 0.02) as BERT's [MASK] embedding; one vector for energy and position together
        self.mask_token = nn.Parameter(0.02 * torch.randn(cfg.width, device=device)) if mask_token else None

    def forward(self, features: Tensor, mask: Tensor | None = None) -> Tensor:
        energy, pos = features[..., :1], features[..., 1:]  # (B, L, 1), (B, L, 3)
        x = self.energy(energy) + self.position(nerf_encoding(pos, self.n_freq))  # (B, L, d_model)
        if mask is None:
            return x
        if self.mask_token is None:
            raise ValueError("model: a mask needs the mask token; build it with mask_token=True")
        # where, not a blend: a masked point's features reach neither the output nor the gradients
        return torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)


class Block(nn.Module):
    """x + Mixer(RMSNorm(x)); bidirectional: x + merge(Mixer(h), R Mixer_rev(R h)), R reversing each event."""

    def __init__(self, cfg: ModelConfig, device: torch.device | None = None) -> None:
        super().__init__()
        self.norm = RMSNorm(cfg.width, device=device)
        self.mixer = build_mixer(cfg, device=device)
        bidirectional = cfg.direction == "bidirectional"
        self.mixer_rev = build_mixer(cfg, device=device) if bidirectional else None
        concat = bidirectional and cfg.merge == "concat"
        self.merge = nn.Linear(2 * cfg.width, cfg.width, bias=False, device=device) if concat else None

    def forward(self, x: Tensor, seq_idx: Tensor | None, rev: Tensor | None = None) -> Tensor:
        """rev (B, L): the gather index reversing each event (`reverse_within_segments`)."""
        h = self.norm(x)
        y = self.mixer(h, seq_idx=seq_idx)
        if self.mixer_rev is None:
            return x + y
        if rev is None:
            rev = reverse_within_segments(seq_idx, x.shape[0], x.shape[1], x.device)
        index = rev.unsqueeze(-1).expand_as(h)  # (B, L, d_model)
        y_rev = self.mixer_rev(h.gather(1, index), seq_idx=seq_idx).gather(1, index)  # back in place
        if self.merge is None:
            return x + y + y_rev
        return x + self.merge(torch.cat([y, y_rev], dim=-1))


class OrderHead(nn.Module):
    """Pretraining head that also sees the serialisation index (MPM's order-head): the index within the
    event, as a fraction of the event length, NeRF-encoded and added; one residual MLP block; a linear out."""

    def __init__(self, cfg: ModelConfig, out_dim: int, device: torch.device | None = None) -> None:
        super().__init__()
        self.n_freq = cfg.n_freq
        self.order = nn.Linear(1 + 2 * cfg.n_freq, cfg.width, device=device)
        self.norm = RMSNorm(cfg.width, device=device)
        self.fc1 = nn.Linear(cfg.width, 2 * cfg.width, device=device)
        self.fc2 = nn.Linear(2 * cfg.width, cfg.width, device=device)
        self.out = nn.Linear(cfg.width, out_dim, device=device)

    def forward(self, x: Tensor, seq_idx: Tensor | None) -> Tensor:
        start, end = segment_bounds(seq_idx, x.shape[0], x.shape[1], x.device)
        index = torch.arange(x.shape[1], device=x.device) - start  # (B, L) serialisation index in the event
        frac = (index / (end - start).clamp_min(1)).to(x.dtype).unsqueeze(-1)  # (B, L, 1) in [0, 1]
        freqs = (2.0 ** torch.arange(self.n_freq, device=x.device, dtype=x.dtype)) * math.pi
        enc = torch.cat([frac, torch.sin(frac * freqs), torch.cos(frac * freqs)], dim=-1)
        h = x + self.order(enc)
        h = h + self.fc2(F.gelu(self.fc1(self.norm(h))))
        return self.out(h)


class PointModel(nn.Module):
    """Backbone + head; forward(features (B, L, 4), seq_idx (B, L) | None, mask (B, L) | None)
    -> (B, L, out_dim).

    `mask` (bool, masked point modelling) needs `mask_token=True`; `head` is linear or order (`HEADS`)."""

    def __init__(
        self,
        cfg: ModelConfig,
        out_dim: int,
        device: torch.device | None = None,
        *,
        head: str = "linear",
        mask_token: bool = False,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head={head!r}: use one of {', '.join(HEADS)}")
        self.cfg = cfg
        self.out_dim = out_dim
        self.embedding = PointEmbedding(cfg, device=device, mask_token=mask_token)
        self.layers = nn.ModuleList(Block(cfg, device=device) for _ in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.width, device=device)
        self.head_kind = head
        if head == "order":
            self.head: nn.Module = OrderHead(cfg, out_dim, device=device)
        else:
            self.head = nn.Linear(cfg.width, out_dim, device=device)

    def backbone_features(
        self,
        features: Tensor,
        seq_idx: Tensor | None = None,
        mask: Tensor | None = None,
        *,
        final_norm: bool = True,
    ) -> Tensor:
        """(B, L, 4) -> (B, L, width), after the final RMSNorm (what downstream adapters read), or with
        `final_norm=False` the residual stream before it (probes: the norm lets the heavy-tailed energy
        column dominate, so the post-norm features lose position information)."""
        if features.ndim != 3 or features.shape[-1] != N_FEATURES:
            raise ValueError(f"features must have shape (batch, length, 4), got {tuple(features.shape)}")
        if seq_idx is not None and seq_idx.shape != features.shape[:2]:
            raise ValueError(
                f"seq_idx shape {tuple(seq_idx.shape)} != features (batch, length) {features.shape[:2]}"
            )
        if mask is not None and mask.shape != features.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} != (batch, length) {features.shape[:2]}")
        if seq_idx is not None:
            seq_idx = seq_idx.to(torch.int32)
        x = self.embedding(features, None if mask is None else mask.bool())
        rev = None
        if self.cfg.direction == "bidirectional":  # one gather index for every layer
            rev = reverse_within_segments(seq_idx, x.shape[0], x.shape[1], x.device)
        for layer in self.layers:
            x = layer(x, seq_idx, rev)
        return self.norm_f(x) if final_norm else x

    def forward(self, features: Tensor, seq_idx: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        x = self.backbone_features(features, seq_idx, mask)
        if self.head_kind == "order":
            return self.head(x, None if seq_idx is None else seq_idx.to(torch.int32))
        return self.head(x)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # noqa: ANN001, ANN201
        check_state_dict_shapes(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def check_state_dict_shapes(model: PointModel, state_dict: dict[str, Tensor]) -> None:
    """A state_dict of another width (or head) is one clear error naming the parameter and both widths."""
    # both the saved form (one in_proj.weight) and the parameter form (split rows, as ZeRO exports it)
    own = {**{n: p.detach() for n, p in model.named_parameters()}, **model.state_dict()}
    width_keys = ("embedding.energy.weight", "norm_f.weight", "layers.0.norm.weight")
    width = next((int(state_dict[k].shape[0]) for k in width_keys if k in state_dict), "unknown")
    for key, value in state_dict.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(
                f"state_dict parameter {key} has shape {tuple(value.shape)} but the model expects "
                f"{tuple(own[key].shape)}: checkpoint width {width}, model width {model.cfg.width} "
                f"(build the model with the checkpoint's model config)"
            )


def build_model(
    cfg: ModelConfig,
    out_dim: int,
    device: torch.device | str | None = None,
    *,
    head: str = "linear",
    mask_token: bool = False,
) -> PointModel:
    """Build and initialise (muP scales when cfg.parameterization == 'mup'); `head` and `mask_token` are
    what the objective asks for (`Objective.model_options()`)."""
    check_resolved(cfg)
    if out_dim < 1:
        raise ValueError(f"out_dim={out_dim} must be positive (the objective's output size)")
    dev = None if device is None else torch.device(device)
    model = PointModel(cfg, out_dim, device=dev, head=head, mask_token=mask_token)
    apply_init(model, cfg)
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """{"total", "non_embedding"}: non-embedding leaves out the input embedding (the head is counted)."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for n, p in model.named_parameters() if n.startswith("embedding."))
    return {"total": total, "non_embedding": total - embedding}


__all__ = ["PointModel", "RMSNorm", "build_model", "count_parameters", "nerf_encoding"]
