"""Mamba-2 mixer with mamba_ssm's parameter names, shapes, split order and initialisation.

Parameters (H heads, G groups, N = d_state, d_inner = expand * d_model), exactly as `mamba_ssm.Mamba2`:
`dt_bias (H)`, `A_log (H)`, `D (H)`, `in_proj.weight (2 d_inner + 2 G N + H, d_model)` with rows
[z, x, B, C, dt], `conv1d.weight (d_inner + 2 G N, 1, d_conv)` + `conv1d.bias` (depthwise causal, SiLU),
`norm.weight (d_inner)` (gated RMSNorm of y * silu(z), per group), `out_proj.weight (d_model, d_inner)`.
A state_dict therefore loads with strict=True into either path.

`in_proj` keeps its rows as three parameters ([z, x], [B, C], [dt]) so that muP can give the B and C rows
their own init scale and learning rate (Adam normalises gradients, so a per-row gradient scale would not
change its step); its state_dict still holds the one `in_proj.weight` of mamba_ssm.
"""

from __future__ import annotations

import importlib.util
import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scaling.model.config import ModelConfig
from scaling.model.ssd import causal_conv1d, segment_ids, ssd_chunked

log = logging.getLogger(__name__)

# mamba_ssm.Mamba2 defaults (initialisation of dt and A).
DT_MIN, DT_MAX, DT_INIT_FLOOR = 1e-3, 0.1, 1e-4
A_INIT_RANGE = (1.0, 16.0)
NORM_EPS = 1e-5


class PackedInProj(nn.Module):
    """Linear d_model -> [z, x | B, C | dt] without bias, stored as three row blocks, saved as one weight."""

    def __init__(
        self, d_model: int, n_zx: int, n_bc: int, n_dt: int, device: torch.device | None = None
    ) -> None:
        super().__init__()
        self.in_features = d_model
        self.weight_zx = nn.Parameter(torch.empty(n_zx, d_model, device=device))
        self.weight_bc = nn.Parameter(torch.empty(n_bc, d_model, device=device))
        self.weight_dt = nn.Parameter(torch.empty(n_dt, d_model, device=device))
        self.reset_parameters()

    def reset_parameters(self, scale_bc: float = 1.0, scale_zx: float = 1.0, scale_dt: float = 1.0) -> None:
        """nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), times a per-block scale (muP)."""
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for w, s in ((self.weight_zx, scale_zx), (self.weight_bc, scale_bc), (self.weight_dt, scale_dt)):
                w.uniform_(-bound * s, bound * s)

    @property
    def weight(self) -> Tensor:
        return torch.cat([self.weight_zx, self.weight_bc, self.weight_dt], dim=0)  # (d_in_proj, d_model)

    def forward(self, u: Tensor) -> Tensor:
        return F.linear(u, self.weight)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        w = self.weight
        destination[prefix + "weight"] = w if keep_vars else w.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):  # noqa: ANN001
        key = prefix + "weight"
        parts = [prefix + n for n in ("weight_zx", "weight_bc", "weight_dt")]
        if key not in state_dict and all(p in state_dict for p in parts):  # split form (ZeRO fp32 export)
            return super()._load_from_state_dict(
                state_dict, prefix, local_metadata, strict, missing, unexpected, errors
            )
        if key not in state_dict:
            missing.append(key)
            return
        w = state_dict[key]
        rows = [self.weight_zx.shape[0], self.weight_bc.shape[0], self.weight_dt.shape[0]]
        if tuple(w.shape) != (sum(rows), self.in_features):
            errors.append(
                f"size mismatch for {key}: copying a param with shape {tuple(w.shape)}, "
                f"the model has {(sum(rows), self.in_features)}"
            )
            return
        with torch.no_grad():
            for param, block in zip(
                (self.weight_zx, self.weight_bc, self.weight_dt), w.split(rows, dim=0), strict=True
            ):
                param.copy_(block)


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * silu(z)) * weight over groups of d_inner / G channels (norm_before_gate=False)."""

    def __init__(self, dim: int, group_size: int, device: torch.device | None = None) -> None:
        super().__init__()
        self.group_size = group_size
        self.weight = nn.Parameter(torch.ones(dim, device=device))

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        dtype = y.dtype
        h = y.float() * F.silu(z.float())  # (..., d_inner)
        hg = h.unflatten(-1, (-1, self.group_size))  # (..., G, d_inner/G)
        hg = hg * torch.rsqrt(hg.pow(2).mean(-1, keepdim=True) + NORM_EPS)
        return (hg.flatten(-2) * self.weight.float()).to(dtype)


class Mamba2Mixer(nn.Module):
    """Pure-torch Mamba-2 mixer (chunked SSD); u (B, L, d_model) -> (B, L, d_model)."""

    def __init__(self, cfg: ModelConfig, device: torch.device | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        d, di, h, gn = cfg.width, cfg.d_inner, cfg.n_heads, cfg.ngroups * cfg.d_state
        self.in_proj = PackedInProj(d, 2 * di, 2 * gn, h, device=device)
        self.conv1d = nn.Conv1d(
            cfg.conv_dim, cfg.conv_dim, cfg.d_conv, groups=cfg.conv_dim, padding=cfg.d_conv - 1, device=device
        )
        dt = torch.exp(torch.rand(h) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
        dt = dt.clamp(min=DT_INIT_FLOOR)
        self.dt_bias = nn.Parameter((dt + torch.log(-torch.expm1(-dt))).to(device))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.empty(h).uniform_(*A_INIT_RANGE).log().to(device))
        self.D = nn.Parameter(torch.ones(h, device=device))
        self.norm = GatedRMSNorm(di, di // cfg.ngroups, device=device)
        self.out_proj = nn.Linear(di, d, bias=False, device=device)

    def forward(self, u: Tensor, seq_idx: Tensor | None = None) -> Tensor:
        cfg = self.cfg
        b, length, _ = u.shape
        di, h, gn = cfg.d_inner, cfg.n_heads, cfg.ngroups * cfg.d_state
        zxbcdt = self.in_proj(u)  # (b, l, 2 di + 2 gn + h)
        z, xbc, dt = zxbcdt.split([di, di + 2 * gn, h], dim=-1)
        seg = None if seq_idx is None else segment_ids(seq_idx, b, length, u.device)
        xbc = F.silu(causal_conv1d(xbc, self.conv1d.weight, self.conv1d.bias, seg))  # (b, l, di + 2 gn)
        x, B, C = xbc.split([di, gn, gn], dim=-1)
        dt = F.softplus(dt.float() + self.dt_bias.float())  # (b, l, h), fp32
        A = -torch.exp(self.A_log.float())  # (h)
        y = ssd_chunked(
            x.unflatten(-1, (h, cfg.headdim)),
            dt,
            A,
            B.unflatten(-1, (cfg.ngroups, cfg.d_state)),
            C.unflatten(-1, (cfg.ngroups, cfg.d_state)),
            self.D,
            cfg.chunk_size,
            seq_idx,
        ).flatten(-2)  # (b, l, di)
        return self.out_proj(self.norm(y, z))


def mamba_ssm_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm") is not None


def resolve_impl(cfg: ModelConfig) -> str:
    """'auto' -> mamba_ssm on CUDA when installed, else reference; 'mamba_ssm' without it is an error."""
    if cfg.impl == "reference":
        return "reference"
    if mamba_ssm_available():
        return "mamba_ssm"
    if cfg.impl == "mamba_ssm":
        why = "no CUDA device" if not torch.cuda.is_available() else "mamba_ssm is not installed"
        raise ValueError(f"model.impl=mamba_ssm but {why}; use model.impl=auto or reference")
    return "reference"


def build_fused_mixer(cfg: ModelConfig, device: torch.device | None = None) -> nn.Module:
    """mamba_ssm.Mamba2 (Triton kernels) with the split in_proj swapped in; same state_dict as Mamba2Mixer."""
    from mamba_ssm import Mamba2  # lazy: imports CUDA extensions

    mixer = Mamba2(
        d_model=cfg.width, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand, headdim=cfg.headdim,
        ngroups=cfg.ngroups, chunk_size=cfg.chunk_size, device=device,
    )  # fmt: skip
    di, gn = cfg.d_inner, cfg.ngroups * cfg.d_state
    packed = PackedInProj(cfg.width, 2 * di, 2 * gn, cfg.n_heads, device=device)
    packed.load_state_dict(mixer.in_proj.state_dict())
    mixer.in_proj = packed  # Mamba2.forward only calls self.in_proj(u)
    return mixer


def build_mixer(cfg: ModelConfig, device: torch.device | None = None) -> nn.Module:
    """A module called as mixer(u (B, L, d_model), seq_idx=(B, L) int32 | None) -> (B, L, d_model)."""
    return build_fused_mixer(cfg, device) if resolve_impl(cfg) == "mamba_ssm" else Mamba2Mixer(cfg, device)
