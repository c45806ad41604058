"""The downstream run's configuration, torch-free: the launcher builds and checks every run's config on a
login node without torch (a spec's `config_class: analysis.downstream.config.DownstreamConfig`), as it does
the pretraining's (scaling/train/config.py). The modules that train and score adapters (`train`, `adapters`,
`inputs`) import their config names from here and still export them under their old names.

    >>> cfg = load_config(DownstreamConfig, "run.yaml", ["task=pid", "n_train_events=1000"])
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from scaling.config import check_range, doc
from scaling.train.config import OptimizerConfig, ScheduleConfig


@dataclass(kw_only=True)
class AdapterConfig:
    """Shape of an adapter; one config serves both the classifier and the track finder."""

    d_proj: int = doc("width after the input projection (d_p for classifiers, d_e for tracking)", default=64)
    n_heads: int = doc("attention heads in every attention layer", default=4)
    depth: int = doc("self-attention layers over the event's points (paper study: 0/1/2/4)", default=1)
    mlp_hidden: int = doc("hidden width of the classifier MLP and the attention FFNs", default=128)
    dropout: float = doc("dropout in attention layers", default=0.0)
    loss: str = doc("classifier loss: 'ce', 'weighted_ce' (inverse class frequency) or 'focal'", default="ce")
    focal_gamma: float = doc("focusing exponent of the focal loss", default=2.0)
    n_queries: int = doc("track queries N (at least the largest number of tracks per event)", default=32)
    n_decoder_layers: int = doc("decoder layers L refining the queries", default=3)
    mask_eps: float = doc("eps of the attention mask log(p + eps) from the previous layer", default=1e-4)
    min_track_points: int = doc("true tracks with fewer points are not targets", default=3)
    query_init_std: float = doc(
        "std of the learnable query embeddings at initialisation (Mask2Former: nn.Embedding, N(0, 1))",
        default=1.0,
    )

    def __post_init__(self) -> None:
        if self.d_proj <= 0 or self.d_proj % self.n_heads:
            raise ValueError(f"adapter.d_proj={self.d_proj} must be positive and divisible by n_heads")
        if self.depth < 0 or self.n_decoder_layers < 1 or self.n_queries < 1:
            raise ValueError("adapter.depth must be >= 0, n_decoder_layers and n_queries >= 1")
        if not self.query_init_std > 0:
            raise ValueError(f"adapter.query_init_std={self.query_init_std} must be positive")
        if self.loss not in ("ce", "weighted_ce", "focal"):
            raise ValueError(f"adapter.loss must be ce, weighted_ce or focal, got {self.loss!r}")


LAYER_WORDS = ("last", "prenorm", "mix")


@dataclass(frozen=True)
class LayerSpec:
    """Parsed `layers`: a word, or residual-stream indices to concatenate."""

    kind: str  # last | prenorm | mix | indices
    indices: tuple[int, ...] = ()

    def n_blocks(self, n_layers: int) -> int:
        """Width multiple of the features: 1, the number of indices, or n_layers + 1 for the mix."""
        return {"mix": n_layers + 1, "indices": len(self.indices)}.get(self.kind, 1)


def parse_layers(text: str, n_layers: int | None = None) -> LayerSpec:
    """'last' | 'prenorm' | 'mix' | comma-separated indices; with `n_layers`, indices are checked too."""
    word = str(text).strip()
    if word in LAYER_WORDS:
        return LayerSpec(word)
    try:
        idx = tuple(int(t) for t in word.split(","))
    except ValueError:
        raise ValueError(
            f"layers={text!r}: use last, prenorm, mix or comma-separated layer indices such as '0,2,4'"
        ) from None
    if n_layers is not None and any(not 0 <= i <= n_layers for i in idx):
        bad = next(i for i in idx if not 0 <= i <= n_layers)
        raise ValueError(
            f"layers={text!r}: the backbone has {n_layers} layers, so index {bad} does not exist; "
            f"use indices 0..{n_layers} (0 = embedding, {n_layers} = last block) or last, prenorm, mix"
        )
    return LayerSpec("indices", idx)


ADAPTER_ONLY = "adapter_only"
REGIMES = ("frozen", "finetune", "scratch", ADAPTER_ONLY)


def run_regime(cfg: DownstreamConfig) -> str:
    """The regime a config runs: `backbone=adapter_only` runs AdapterOnly (the default `frozen` has nothing to
    freeze there; `finetune` and `scratch` are refused when the config is built)."""
    return ADAPTER_ONLY if cfg.backbone == ADAPTER_ONLY else cfg.regime


@dataclass(kw_only=True)
class AdapterOptimizerConfig(OptimizerConfig):
    """Adapter AdamW: the pretraining's `optimizer.*` keys, with the adapter's defaults."""

    lr: float = doc("peak learning rate", default=1e-3)
    grad_clip: float = doc("global gradient-norm clip; 0 = off", default=1.0)


@dataclass(kw_only=True)
class AdapterScheduleConfig(ScheduleConfig):
    """The pretraining's LR schedules (`schedule.*`, scaling/train/schedule.py) over `budget.steps`; by
    default a short linear warm-up, then cosine decay to 10 % of the peak."""

    warmup_steps: int = doc("steps of linear warm-up from 0 to the peak", default=20)
    min_lr_ratio: float = doc("final LR as a fraction of the peak", default=0.1)


@dataclass(kw_only=True)
class AdapterBudgetConfig:
    """How long the adapter trains."""

    steps: int = doc("optimizer steps (each one batch of events)", default=300)
    batch_events: int = doc(
        "events per optimizer step (and per batch when features are extracted and test events predicted)",
        default=8,
    )

    def __post_init__(self) -> None:
        check_range(self, "steps", "batch_events", low=1)


@dataclass(kw_only=True)
class AdapterLoggingConfig:
    """The run's log."""

    progress_interval: int = doc("a progress line in the run's log (the Slurm log) every this many steps",
                                 default=50)  # fmt: skip

    def __post_init__(self) -> None:
        check_range(self, "progress_interval", low=1)


@dataclass(kw_only=True)
class DownstreamConfig:
    """A downstream run: backbone x task x label budget x seed."""

    # the adapter's optimisation keys are spelled as pretraining spells them (scaling/train/config.py)
    RENAMED_KEYS = MappingProxyType({
        "optim.lr": "optimizer.lr",
        "optim.weight_decay": "optimizer.weight_decay",
        "optim.grad_clip": "optimizer.grad_clip",
        "optim.warmup_steps": "schedule.warmup_steps",
        "optim.steps": "budget.steps",
        "optim.batch_events": "budget.batch_events",
        "optim.progress_interval": "logging.progress_interval",
    })  # fmt: skip

    backbone: str = doc("training run dir or checkpoint step folder, or 'adapter_only'", default=ADAPTER_ONLY)
    regime: str = doc(
        "frozen (features of the fixed backbone), finetune (backbone trained too, at backbone_lr_ratio), "
        "scratch (the same network from random initialisation) or adapter_only (linear stem on raw inputs; "
        "with a backbone, the stem is as wide as it)",
        default="frozen",
    )
    layers: str = doc(
        "backbone layers the adapter reads: last (after the final norm), prenorm, mix (learned weights over "
        "all layers) or indices such as '0,2,4' (concatenated; 0 = embedding)",
        default="last",
    )
    standardize: bool = doc(
        "shift and scale every adapter input dimension by its training-split mean and std (input_stats.json)",
        default=True,
    )
    backbone_lr_ratio: float = doc(
        "finetune / scratch: backbone learning rate as a fraction of optimizer.lr (muP groups kept)",
        default=0.1,
    )
    step: int | None = doc("checkpoint step (default: the latest complete one)", default=None)
    stem_width: int = doc("AdapterOnly: width of the learnable linear stem on raw inputs", default=64)
    expect_width: int | None = doc("fail unless the backbone has this width (sweep safety)", default=None)
    expect_objective: str | None = doc("fail unless the backbone was pretrained with it", default=None)
    dataset: str = doc("dataset folder (manifest.json + labelled splits)", default="")
    train_split: str = doc("split the labelled training events come from", default="train")
    eval_split: str = doc("split scored at the end", default="test")
    task: str = doc("'pid' (5 classes), 'noise' (2 classes) or 'tracking'", default="pid")
    n_train_events: int = doc("label budget: the first N events of the training split", default=100)
    n_eval_events: int = doc("test events scored", default=200)
    seed: int = doc("seed of adapter initialisation and batch order", default=0)
    eval_min_points: int = doc("tracking: true tracks with fewer points are excluded (counted)", default=3)
    tracking_selection: str = doc(
        "tracking: 'none' or 'sphenix' (>=20 points, pT>1 GeV, |eta|<1.1)", default="none"
    )
    n_display_events: int = doc("test events whose predictions are saved for the event display", default=4)
    cache_dir: str = doc("feature cache folder ('' = no cache)", default="runs/feature-cache")
    device: str = doc("adapter device: auto (cuda if available, else cpu), cpu or cuda", default="auto")
    adapter: AdapterConfig = doc("adapter shape and loss", default_factory=AdapterConfig)
    optimizer: AdapterOptimizerConfig = doc("adapter AdamW", default_factory=AdapterOptimizerConfig)
    schedule: AdapterScheduleConfig = doc("adapter LR schedule", default_factory=AdapterScheduleConfig)
    budget: AdapterBudgetConfig = doc("adapter steps and batch", default_factory=AdapterBudgetConfig)
    logging: AdapterLoggingConfig = doc("progress lines", default_factory=AdapterLoggingConfig)
    set_loss: dict[str, float] = doc(
        "tracking loss weights: cls, focal, dice, no_object", default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {', '.join(REGIMES)}, got {self.regime!r}")
        if self.regime in ("finetune", "scratch") and self.backbone == ADAPTER_ONLY:
            raise ValueError(
                f"regime={self.regime} needs a backbone but backbone=adapter_only; "
                "set backbone=<pretraining run dir> or regime=adapter_only"
            )
        parse_layers(self.layers)  # the syntax now; indices against the backbone's depth when it is read
        if not self.backbone_lr_ratio > 0:
            raise ValueError(f"backbone_lr_ratio={self.backbone_lr_ratio} must be positive")
        if self.task not in ("pid", "noise", "tracking"):
            raise ValueError(f"task must be pid, noise or tracking, got {self.task!r}")
        if self.n_train_events < 1 or self.n_eval_events < 1:
            raise ValueError("n_train_events and n_eval_events must be >= 1")
        unknown = set(self.set_loss) - {"cls", "focal", "dice", "no_object"}
        if unknown:
            raise ValueError(f"set_loss: unknown weight {sorted(unknown)[0]!r} (cls, focal, dice, no_object)")
