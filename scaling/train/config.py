"""The training configuration tree: one keyword-only dataclass per component, loaded strictly from YAML.

    >>> cfg = load_train_config("scaling/train/configs/tiny_cpu.yaml", ["optimizer.lr=3e-4"])
    >>> cfg.budget.steps, cfg.global_batch_events

Unknown keys and bad values are a `ConfigError` naming the dotted key and the file (scaling.config).
Derived values (accumulation steps, budget checkpoint steps) are functions of the config, never mutations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.config import ConfigError, doc, load_config, load_yaml
from scaling.data.schema import TRAIN_SPLIT, VAL_SPLIT
from scaling.inputs.serialization import SERIALIZATIONS
from scaling.model.config import ModelConfig, resolve_model_config
from scaling.objectives.config import ObjectiveConfig, check_backbone
from scaling.train.schedule import REGISTRY as SCHEDULE_REGISTRY


@dataclass(kw_only=True)
class SimulateConfig:
    """How to make the dataset when `data.dataset_dir` has no manifest (quickstart)."""

    enabled: bool = doc("simulate the dataset into dataset_dir when it is missing", default=False)
    train_events: int = doc("events in the simulated train split", default=512)
    val_events: int = doc("events in the simulated validation split", default=64)
    seed: int = doc("simulator seed", default=0)
    profile: str = doc(
        "simulator profile: sphenix (studies), paper (ideal helices) or small (fast)", default="small"
    )
    shard_events: int = doc("events per HDF5 shard", default=256)

    def __post_init__(self) -> None:
        if self.train_events < 1 or self.val_events < 1 or self.shard_events < 1:
            raise ValueError("simulate_if_missing: train_events, val_events and shard_events must be >= 1")


@dataclass(kw_only=True)
class DataConfig:
    """Which events the run reads."""

    dataset_dir: str = doc("dataset folder holding manifest.json", default="data/quickstart")
    train_split: str = doc(
        "split trained on: train (labelled; simulated data) or pretrain (unlabelled; TPCpp-10M)",
        default=TRAIN_SPLIT,
    )
    val_split: str = doc("split the fixed held-out validation events come from", default=VAL_SPLIT)
    fraction: float = doc("fraction of the train split used (nested subsets, loader)", default=1.0)
    shuffle: bool = doc("shuffle the training events each epoch", default=True)
    shuffle_buffer: int = doc("loader shuffle buffer in events", default=1024)
    val_events: int = doc("size of the fixed held-out validation set (first events of val_split)", default=64)
    max_tokens: int = doc("token budget of one packed micro-batch; 0 = no limit", default=0)
    skip_bad_events: bool = doc("skip unreadable / non-finite events instead of failing", default=False)
    energy_feature: str = doc(
        "energy input: standard ((E - mean) / std, the paper) or log (ln(E / mean E): heavy tails tamed)",
        default="standard",
    )
    difficulty_events: int = doc(
        "train events (first, unshuffled) the difficulty table, target scaling and baselines are fitted on",
        default=256,
    )
    simulate_if_missing: SimulateConfig = field(
        default_factory=SimulateConfig, metadata={"doc": "simulate the dataset if it does not exist"}
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"data.fraction={self.fraction} must be in (0, 1]")
        if self.energy_feature not in ("standard", "log"):
            raise ValueError(f"data.energy_feature={self.energy_feature!r}: use standard or log")
        if (
            self.val_events < 0
            or self.shuffle_buffer < 1
            or self.max_tokens < 0
            or self.difficulty_events < 1
        ):
            raise ValueError(
                "data: val_events and max_tokens must be >= 0, shuffle_buffer and difficulty_events >= 1"
            )


@dataclass(kw_only=True)
class OptimizerConfig:
    """AdamW (torch implementation, so nothing is JIT-compiled)."""

    lr: float = doc("peak learning rate at the muP base width (paper: 2e-4 on m3)", default=2e-4)
    weight_decay: float = doc("AdamW weight decay (paper: 0.01)", default=0.01)
    betas: list[float] = doc("AdamW betas", default_factory=lambda: [0.9, 0.999])
    eps: float = doc("AdamW epsilon", default=1e-8)
    grad_clip: float = doc("global gradient-norm clip (paper: 0.1); 0 = off", default=0.1)

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.eps <= 0:
            raise ValueError("optimizer: lr and eps must be > 0, weight_decay and grad_clip >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer.betas={self.betas} must be two numbers in [0, 1)")


@dataclass(kw_only=True)
class ScheduleConfig:
    """Linear warm-up, then a named decay (paper: 10k warm-up steps, cosine); scaling/train/schedule.py."""

    name: str = doc(
        "cosine (decay over the whole budget) | wsd (warmup-stable-decay: peak, then a 1-sqrt cooldown over "
        "the last decay_fraction) | constant",
        default="cosine",
    )
    warmup_steps: int = doc("steps of linear warm-up from 0 to the peak", default=10000)
    min_lr_ratio: float = doc("final LR as a fraction of the peak", default=0.0)
    decay_fraction: float = doc("wsd: fraction of budget.steps spent in the cooldown", default=0.2)
    cooldown_branches: list[float] = doc(
        "wsd: fractions of budget.steps (stable phase, increasing) at which a cooldown branch of "
        "ceil(decay_fraction x step) steps is trained and validated from the run's state, then the run "
        "goes on (branches.jsonl); [] = none",
        default_factory=list,
    )

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("schedule: warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")
        SCHEDULE_REGISTRY.lookup(self.name)  # schedule.name=...: use one of cosine, wsd, constant
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(f"schedule.decay_fraction={self.decay_fraction} must be in (0, 1]")
        branches = self.cooldown_branches
        if branches and self.name != "wsd":
            raise ValueError(
                f"schedule.cooldown_branches={branches} needs schedule.name=wsd (is {self.name}): only a "
                "stable phase at the peak LR can be cooled down to a shorter budget"
            )
        increasing = all(a < b for a, b in zip(branches, branches[1:], strict=False))
        if any(not 0.0 < f < 1.0 for f in branches) or not increasing:
            raise ValueError(
                f"schedule.cooldown_branches={branches} must be fractions of budget.steps in (0, 1), "
                "strictly increasing"
            )


@dataclass(kw_only=True)
class BudgetConfig:
    """How long the run is and when it is measured."""

    steps: int = doc("total optimizer steps (paper: 50k for m1-m2, 100k for m3-m6)", default=50000)
    global_batch_events: int = doc("events per optimizer step (paper: 256)", default=256)
    micro_batch_events: int = doc("events per rank per forward pass", default=8)
    checkpoint_fractions: list[float] = doc(
        "fractions of `steps` at which a checkpoint kept forever is written and validated",
        default_factory=lambda: [0.25, 0.5, 1.0],
    )
    val_interval: int = doc("validate every this many steps (0: only at budget checkpoints)", default=1000)
    max_bad_steps: int = doc("abort (status failed) after this many non-finite steps in a row", default=5)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.global_batch_events < 1 or self.micro_batch_events < 1:
            raise ValueError("budget: steps, global_batch_events and micro_batch_events must be >= 1")
        if any(not 0.0 < f <= 1.0 for f in self.checkpoint_fractions):
            raise ValueError(f"budget.checkpoint_fractions={self.checkpoint_fractions} must lie in (0, 1]")
        if self.val_interval < 0 or self.max_bad_steps < 1:
            raise ValueError("budget: val_interval must be >= 0 and max_bad_steps >= 1")


@dataclass(kw_only=True)
class CheckpointConfig:
    """Periodic checkpoints (budget checkpoints are extra and kept forever)."""

    interval: int = doc("save every this many steps (0: only budget checkpoints and on signal)", default=1000)
    keep_last: int = doc("periodic checkpoints kept (budget ones are never pruned)", default=2)

    def __post_init__(self) -> None:
        if self.interval < 0 or self.keep_last < 1:
            raise ValueError("checkpoint: interval must be >= 0 and keep_last >= 1")


@dataclass(kw_only=True)
class LoggingConfig:
    """metrics.jsonl and the terminal."""

    interval: int = doc("write a train row every this many steps", default=10)
    progress_interval: int = doc(
        "one progress line in the rank-0 log (the Slurm log) every this many steps", default=50
    )
    tensorboard: bool = doc(
        "also write the metrics.jsonl scalars to <run_dir>/tensorboard (needs the tensorboard package)",
        default=False,
    )

    def __post_init__(self) -> None:
        if self.interval < 1 or self.progress_interval < 1:
            raise ValueError("logging: interval and progress_interval must be >= 1")


@dataclass(kw_only=True)
class DeepSpeedConfig:
    """The DeepSpeed engine."""

    zero_stage: int = doc("ZeRO stage 0-3", default=1)
    bf16: str = doc("auto (bf16 on GPU, fp32 on CPU) | true | false", default="auto")

    def __post_init__(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"deepspeed.zero_stage={self.zero_stage} must be 0, 1, 2 or 3")
        if self.bf16 not in ("auto", "true", "false"):
            raise ValueError(f"deepspeed.bf16={self.bf16!r} must be auto, true or false")


@dataclass(kw_only=True)
class TrainConfig:
    """One pretraining run."""

    model: ModelConfig = field(default_factory=ModelConfig, metadata={"doc": "backbone"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"doc": "events"})
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig, metadata={"doc": "objective"})
    serialization: str = doc("spacepoint order: raster | hilbert | radial | random", default="raster")
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig, metadata={"doc": "AdamW"})
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, metadata={"doc": "LR schedule"})
    budget: BudgetConfig = field(default_factory=BudgetConfig, metadata={"doc": "steps and batch"})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"doc": "saving"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"doc": "metrics"})
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig, metadata={"doc": "engine"})
    seed: int = doc("seed of weights, data order and serialisation randomness", default=0)
    run: dict[str, Any] = doc(
        "free-form run identity written by the launcher {name, sweep}", default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.serialization not in SERIALIZATIONS:
            raise ValueError(f"serialization={self.serialization!r}: use one of {', '.join(SERIALIZATIONS)}")
        # A named model's width (depth, state size) filled in once, here: everything downstream reads them.
        # Heads dividing d_inner and groups dividing heads are checked at load time too, so a contradiction
        # is a config error (exit 2) rather than a crash when the model is built.
        self.model = resolve_model_config(self.model)
        check_backbone(self.objective, self.model.direction, self.budget.micro_batch_events)
        check_cooldown_branches(self)


def accumulation_steps(cfg: TrainConfig, world_size: int) -> int:
    """global batch = micro-batch x accumulation x world size; anything else is a ConfigError."""
    per_pass = cfg.budget.micro_batch_events * world_size
    if cfg.budget.global_batch_events % per_pass:
        raise ConfigError(
            f"budget.global_batch_events={cfg.budget.global_batch_events} is not a multiple of "
            f"budget.micro_batch_events ({cfg.budget.micro_batch_events}) x world size ({world_size}); "
            "change one of them"
        )
    return cfg.budget.global_batch_events // per_pass


def budget_checkpoint_steps(cfg: TrainConfig) -> dict[int, float]:
    """{step: fraction} of the budget checkpoints (ceil, so 25 % of 10 steps is step 3)."""
    return {
        max(1, math.ceil(f * cfg.budget.steps - 1e-9)): f for f in sorted(cfg.budget.checkpoint_fractions)
    }


def cooldown_branch_steps(cfg: TrainConfig) -> list[int]:
    """Steps at which the run branches off a cooldown: round(fraction x budget.steps), in order."""
    return [round(f * cfg.budget.steps) for f in cfg.schedule.cooldown_branches]


def cooldown_length(step: int, decay_fraction: float) -> int:
    """Steps of the cooldown branched off at `step`: ceil(decay_fraction x step) (float noise ignored)."""
    return max(1, math.ceil(decay_fraction * step - 1e-9))


def check_cooldown_branches(cfg: TrainConfig) -> None:
    """Every branch point lies in the stable phase: after the warm-up, before the run's own cooldown, and
    on its own step (ValueError naming the key otherwise)."""
    sched, steps = cfg.schedule, cfg.budget.steps
    if not sched.cooldown_branches:
        return
    points = cooldown_branch_steps(cfg)
    stable_end = max(sched.warmup_steps, steps - math.ceil(sched.decay_fraction * steps))  # cooldown start
    for f, s in zip(sched.cooldown_branches, points, strict=True):
        if not (max(1, sched.warmup_steps) <= s < stable_end):
            raise ValueError(
                f"schedule.cooldown_branches: {f} of budget.steps={steps} is step {s}, outside the stable "
                f"phase (steps {sched.warmup_steps}..{stable_end - 1}: after schedule.warmup_steps, before "
                f"the cooldown of schedule.decay_fraction={sched.decay_fraction}); use a fraction inside it"
            )
    if len(set(points)) < len(points):
        raise ValueError(
            f"schedule.cooldown_branches={sched.cooldown_branches} give steps {points} of "
            f"budget.steps={steps}: two branches on one step; use fractions further apart"
        )


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Strict load: defaults < YAML < overrides."""
    load_yaml(path)  # a missing file or bad YAML is named first
    return load_config(TrainConfig, path, list(overrides))
