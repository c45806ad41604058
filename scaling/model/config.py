"""Model configuration: the Mamba-2 point model family (m1-m6, tiny) as one keyword-only dataclass.

    >>> cfg = resolve_model_config(ModelConfig(name="m3"))
    >>> cfg.width, cfg.n_layers, cfg.d_inner, cfg.n_heads
    (256, 12, 512, 8)

A named model fixes its width (and, for the test sizes, its depth and state size); `resolve_model_config`
fills those fields and rejects a value that contradicts the name (use `name: custom` to set them freely).
A loaded `TrainConfig` resolves its model once, at construction; code that builds a `ModelConfig` by hand
resolves it itself. The model, its FLOP count and its optimiser groups only check (`check_resolved`).
"""

from __future__ import annotations

import dataclasses

from scaling.config import doc
from scaling.model.family import MODEL_FAMILY

PARAMETERIZATIONS = ("mup", "standard")
IMPLS = ("auto", "reference", "mamba_ssm")
DIRECTIONS = ("causal", "bidirectional")
MERGES = ("add", "concat")


@dataclasses.dataclass(kw_only=True)
class ModelConfig:
    """Mamba-2 backbone + linear head; defaults are the paper's (12 layers, d_state 128, head dim 64)."""

    name: str = doc("m1..m6, a test size (tiny, small) or custom (set width etc. yourself)", default="m1")
    width: int = doc("d_model; 0 takes it from `name`", default=0)
    n_layers: int = doc("number of Mamba-2 blocks", default=12)
    d_state: int = doc("SSM state size N per head", default=128)
    headdim: int = doc("Mamba-2 head dimension P (d_inner must be a multiple)", default=64)
    expand: int = doc("d_inner = expand * width", default=2)
    d_conv: int = doc("depthwise causal convolution width", default=4)
    ngroups: int = doc("number of B/C groups G (heads share B, C within a group)", default=1)
    chunk_size: int = doc("SSD chunk length (mamba_ssm default 256; 64-128 fastest on CPU)", default=256)
    n_freq: int = doc("NeRF positional-encoding frequencies per coordinate (r, phi, eta)", default=6)
    parameterization: str = doc("mup (width-transferable LR, base width below) or standard", default="mup")
    base_width: int = doc("muP base width: all multipliers are 1 at this width (m3 = 256)", default=256)
    impl: str = doc(
        "auto (mamba_ssm on CUDA if installed, else reference) | reference | mamba_ssm", default="auto"
    )

    direction: str = doc(
        "causal (one forward scan, the paper) or bidirectional (a forward and a reverse scan per layer, "
        "each event reversed in place; Vim / Caduceus)",
        default="causal",
    )
    merge: str = doc(
        "bidirectional: add the two scans (Vim) or concat them and project back to width", default="add"
    )

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"model.direction={self.direction!r}: use causal or bidirectional")
        if self.merge not in MERGES:
            raise ValueError(f"model.merge={self.merge!r}: use add or concat")
        if self.name not in MODEL_FAMILY and self.name != "custom":
            known = ", ".join([*MODEL_FAMILY, "custom"])
            raise ValueError(f"model.name={self.name!r} is not a known model; use one of {known}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"model.parameterization={self.parameterization!r}: use mup or standard")
        if self.impl not in IMPLS:
            raise ValueError(f"model.impl={self.impl!r}: use one of {', '.join(IMPLS)}")
        for key in (
            "n_layers",
            "d_state",
            "headdim",
            "expand",
            "d_conv",
            "ngroups",
            "chunk_size",
            "base_width",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key}={getattr(self, key)} must be a positive integer")
        if self.width < 0 or self.n_freq < 0:
            raise ValueError("model.width and model.n_freq must be >= 0")

    @property
    def d_inner(self) -> int:
        return self.expand * self.width

    @property
    def n_heads(self) -> int:
        return self.d_inner // self.headdim

    @property
    def d_in_proj(self) -> int:
        """Rows of in_proj: [z, x, B, C, dt] = 2 d_inner + 2 G N + H (mamba_ssm order)."""
        return 2 * self.d_inner + 2 * self.ngroups * self.d_state + self.n_heads

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.ngroups * self.d_state

    @property
    def n_pos_features(self) -> int:
        """NeRF encoding size of (r, phi, eta): p, sin(2^l pi p), cos(2^l pi p) for l < n_freq."""
        return 3 * (1 + 2 * self.n_freq)


def _preset(cfg: ModelConfig) -> dict:
    """The fields `cfg.name` fixes (none for custom)."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    return {k: v for k, v in MODEL_FAMILY.get(cfg.name, {}).items() if k in fields}


def resolve_model_config(cfg: ModelConfig) -> ModelConfig:
    """Fill the fields a named model fixes; a contradicting value is an error naming the field. Idempotent."""
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    preset = _preset(cfg)
    updates = {}
    for key, value in preset.items():
        current = getattr(cfg, key)
        if current not in (value, defaults[key]):
            raise ValueError(
                f"model.{key}={current} contradicts model.name={cfg.name} ({key} {value}); "
                f"drop model.{key} or use model.name=custom"
            )
        updates[key] = value
    out = dataclasses.replace(cfg, **updates)
    if out.width < 1:
        raise ValueError("model.width must be set (> 0) when model.name=custom")
    if out.d_inner % out.headdim:
        raise ValueError(
            f"model.headdim={out.headdim} must divide d_inner = expand*width = {out.d_inner}; "
            "change model.width, model.expand or model.headdim"
        )
    if out.n_heads % out.ngroups:
        raise ValueError(
            f"model.ngroups={out.ngroups} must divide the number of heads {out.n_heads}; change model.ngroups"
        )
    return out


def check_resolved(cfg: ModelConfig) -> ModelConfig:
    """`cfg` itself when its named model's fields are filled in, else a ValueError saying how to fill them."""
    unfilled = [k for k, v in _preset(cfg).items() if getattr(cfg, k) != v]
    if cfg.width < 1 or unfilled:
        raise ValueError(
            f"model.name={cfg.name}: {', '.join(unfilled or ['width'])} not filled in; pass "
            "resolve_model_config(cfg) (a loaded TrainConfig's model already is)"
        )
    return cfg
