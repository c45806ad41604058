"""The point model: embedding -> n_layers x (x + Mamba2(RMSNorm(x))) -> RMSNorm -> Linear head.

    >>> model = build_model(resolve_model_config(ModelConfig(name="tiny")), out_dim=90)
    >>> model(features).shape          # features (B, L, 4) = [e_std, r01, phi01, eta01]
    torch.Size([B, L, 90])

The embedding sums Linear(energy) and Linear(NeRF(r, phi, eta)), with the NeRF encoding
gamma(p) = (p, sin(2^l pi p), cos(2^l pi p) for l < n_freq) (Mildenhall et al. 2020, eq. 4) of the
[0, 1]-normalised coordinates, as in the reference study's code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from scaling.model.config import ModelConfig
from scaling.model.mamba2 import build_mixer

N_FEATURES = 4
RMS_EPS = 1e-5


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

    def __init__(self, cfg: ModelConfig, device: torch.device | None = None) -> None:
        super().__init__()
        self.n_freq = cfg.n_freq
        self.energy = nn.Linear(1, cfg.width, device=device)
        self.position = nn.Linear(cfg.n_pos_features, cfg.width, device=device)

    def forward(self, features: Tensor) -> Tensor:
        energy, pos = features[..., :1], features[..., 1:]  # (B, L, 1), (B, L, 3)
        return self.energy(energy) + self.position(nerf_encoding(pos, self.n_freq))  # (B, L, d_model)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, device: torch.device | None = None) -> None:
        super().__init__()
        self.norm = RMSNorm(cfg.width, device=device)
        self.mixer = build_mixer(cfg, device=device)

    def forward(self, x: Tensor, seq_idx: Tensor | None) -> Tensor:
        return x + self.mixer(self.norm(x), seq_idx=seq_idx)


class PointModel(nn.Module):
    """Backbone + linear head; forward(features (B, L, 4), seq_idx (B, L) | None) -> (B, L, out_dim)."""

    def __init__(self, cfg: ModelConfig, out_dim: int, device: torch.device | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.out_dim = out_dim
        self.embedding = PointEmbedding(cfg, device=device)
        self.layers = nn.ModuleList(Block(cfg, device=device) for _ in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.width, device=device)
        self.head = nn.Linear(cfg.width, out_dim, device=device)

    def backbone_features(
        self, features: Tensor, seq_idx: Tensor | None = None, *, final_norm: bool = True
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
        if seq_idx is not None:
            seq_idx = seq_idx.to(torch.int32)
        x = self.embedding(features)
        for layer in self.layers:
            x = layer(x, seq_idx)
        return self.norm_f(x) if final_norm else x

    def forward(self, features: Tensor, seq_idx: Tensor | None = None) -> Tensor:
        return self.head(self.backbone_features(features, seq_idx))

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


def build_model(cfg: ModelConfig, out_dim: int, device: torch.device | str | None = None) -> PointModel:
    """Build and initialise (muP scales when cfg.parameterization == 'mup'); cfg must be resolved."""
    from scaling.model.config import resolve_model_config
    from scaling.mup import apply_init

    cfg = resolve_model_config(cfg)
    if out_dim < 1:
        raise ValueError(f"out_dim={out_dim} must be positive (the objective's output size)")
    model = PointModel(cfg, out_dim, device=None if device is None else torch.device(device))
    apply_init(model, cfg)
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """{"total", "non_embedding"}: non-embedding leaves out the input embedding (the head is counted)."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for n, p in model.named_parameters() if n.startswith("embedding."))
    return {"total": total, "non_embedding": total - embedding}


__all__ = ["PointModel", "RMSNorm", "build_model", "count_parameters", "nerf_encoding"]
