"""One downstream run: train an adapter on cached frozen features of a label budget, score it on a test split.

    >>> cfg = load_config(DownstreamConfig, "run.yaml", ["task=pid", "n_train_events=1000"])
    >>> metrics = run_downstream(cfg, Path("runs/downstream/pid-m3-1000-s0"))

The run directory receives `config.yaml` (resolved), `status.json`, `metrics.json` (task metrics, training
throughput, metric time) and `predictions.h5` (points, truth and prediction of the first few test events, for
the event display). Training reads only adapter parameters: the backbone ran once, under `torch.no_grad`, when
the features were extracted, so no gradient can reach it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from analysis.downstream.adapters import (
    assign_tracks,
    build_adapter,
    class_weights,
    classification_loss,
)
from analysis.downstream.config import (  # noqa: F401 - the config names, exported here as before
    ADAPTER_ONLY,
    REGIMES,
    AdapterBudgetConfig,
    AdapterConfig,
    AdapterLoggingConfig,
    AdapterOptimizerConfig,
    AdapterScheduleConfig,
    DownstreamConfig,
    run_regime,
)
from analysis.downstream.features import LabelledSplit
from analysis.downstream.inputs import InputAdapter
from analysis.downstream.matching import SetLossWeights, event_set_loss, track_targets
from analysis.downstream.metrics import classification_metrics, tracking_metrics
from scaling.data.schema import PID_NAMES
from scaling.train.progress import format_duration
from scaling.train.schedule import lr_factor

log = logging.getLogger(__name__)


@dataclass
class Batch:
    x: torch.Tensor  # [B, L, d]
    valid: torch.Tensor  # [B, L] bool
    labels: torch.Tensor  # [B, L] int64 (-100 on padding)
    track_ids: list[np.ndarray] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; asking for cuda without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but no CUDA device is visible; use device=cpu or auto")
    return torch.device(name)


def _to(batch: Batch, device: torch.device) -> Batch:
    return Batch(batch.x.to(device), batch.valid.to(device), batch.labels.to(device), batch.track_ids)


def make_batch(data: LabelledSplit, idx: list[int], task: str) -> Batch:
    """Pad events `idx` of `data` into one batch; labels for `task` (tracking keeps raw track ids)."""
    lengths = [data.features[i].shape[0] for i in idx]
    width = data.features[idx[0]].shape[1]
    x = torch.zeros(len(idx), max(lengths), width)
    labels = torch.full((len(idx), max(lengths)), -100, dtype=torch.int64)
    valid = torch.zeros(len(idx), max(lengths), dtype=torch.bool)
    for row, i in enumerate(idx):
        n = lengths[row]
        x[row, :n] = torch.from_numpy(np.asarray(data.features[i], dtype=np.float32))
        valid[row, :n] = True
        if task != "tracking":
            labels[row, :n] = torch.from_numpy(np.asarray(getattr(data, task)[i], dtype=np.int64))
    tracks = [np.asarray(data.track_id[i]) for i in idx] if task == "tracking" else []
    return Batch(x, valid, labels, tracks)


def lr_at(step: int, cfg: DownstreamConfig) -> float:
    """Multiplier of the peak LR at optimizer step `step`: the pretraining's schedule over `budget.steps`."""
    sched = cfg.schedule
    return lr_factor(
        step, warmup_steps=sched.warmup_steps, total_steps=cfg.budget.steps, min_ratio=sched.min_lr_ratio,
        name=sched.name, decay_fraction=sched.decay_fraction,
    )  # fmt: skip


def per_event(batch: Batch) -> bool:
    """Run the adapter one event at a time on CPU. Attention over a padded batch costs batch x (longest
    event)^2, and the CPU study's events run from a few hundred to 11,500 points: one 8-event step of
    frozen-feature PID trained at 3.5 events/s padded. Each event alone costs its own n^2 and gives the same
    outputs, since padded keys are masked out either way; on a GPU the padded batch stays (one launch), and
    so does a batch holding an event without points."""
    return batch.x.device.type == "cpu" and batch.x.shape[0] > 1 and bool(batch.valid.any(dim=1).all())


def event_views(batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x [1, n, d], valid [1, n]) of each event of the batch, without its padding."""
    lengths = batch.valid.sum(dim=1).tolist()
    return [(batch.x[b : b + 1, :n], batch.valid[b : b + 1, :n]) for b, n in enumerate(lengths)]


def batch_loss(
    model: torch.nn.Module, batch: Batch, cfg: DownstreamConfig, weights: torch.Tensor | None
) -> torch.Tensor:
    """Mean loss of a batch: point classification, or the set loss summed over all decoder layers."""
    if cfg.task != "tracking":
        if per_event(batch):  # the same points' logits, pooled as the padded batch pools them
            logits = torch.cat([model(x, v)[0] for x, v in event_views(batch)])
        else:
            logits = model(batch.x, batch.valid)[batch.valid]  # [B, L, C] -> [points, C]
        return classification_loss(logits, batch.labels[batch.valid], cfg.adapter, weights)
    w = SetLossWeights(**cfg.set_loss)
    if per_event(batch):
        outs_of = [model(x, v) for x, v in event_views(batch)]  # per event: list of (class, mask) with B = 1
        event_outs = [[(cls[0], mask[0]) for cls, mask in outs] for outs in outs_of]
    else:
        outs = model(batch.x, batch.valid)  # list of (class [B, N], mask [B, N, L])
        event_outs = [[(cls[b], mask[b]) for cls, mask in outs] for b in range(len(batch.track_ids))]
    total = batch.x.new_zeros(())
    for tid, outs_b in zip(batch.track_ids, event_outs, strict=True):
        n = tid.shape[0]
        targets = track_targets(tid, cfg.adapter.min_track_points).to(batch.x.device)  # [T, n]
        for cls, mask in outs_b:  # auxiliary losses at every decoder layer
            total = total + event_set_loss(cls, mask[:, :n], targets, w)[0]
    return total / len(batch.track_ids)


def adapter_progress_line(step: int, cfg: DownstreamConfig, losses: list[float], elapsed_s: float) -> str:
    """One line of the run's log: task, step/steps, mean loss of the last 10 steps, events/s and ETA."""
    rate = step * cfg.budget.batch_events / max(elapsed_s, 1e-9)
    eta = elapsed_s / step * (cfg.budget.steps - step)
    return (
        f"{cfg.task} adapter step {step}/{cfg.budget.steps}  loss {np.mean(losses[-10:]):.4g}  "
        f"{rate:,.1f} events/s  eta {format_duration(eta)}"
    )


def train_adapter(model: torch.nn.Module, data: LabelledSplit, cfg: DownstreamConfig) -> dict[str, Any]:
    """Train `model` on `data`; returns loss curve ends and throughput (events/s, without feature time)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(
        param_groups(model, cfg), lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay,
        betas=tuple(cfg.optimizer.betas), eps=cfg.optimizer.eps,
    )  # fmt: skip
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    weights = None
    if cfg.task != "tracking" and cfg.adapter.loss != "ce":
        labels = torch.from_numpy(np.concatenate(getattr(data, cfg.task)).astype(np.int64))
        weights = class_weights(labels, 5 if cfg.task == "pid" else 2)
    order: list[int] = []
    losses: list[float] = []
    device = next(model.parameters()).device
    weights = None if weights is None else weights.to(device)
    model.train()
    t0 = time.perf_counter()
    for _ in range(cfg.budget.steps):
        if len(order) < cfg.budget.batch_events:
            order += torch.randperm(len(data), generator=gen).tolist()
        idx, order = order[: cfg.budget.batch_events], order[cfg.budget.batch_events :]
        loss = batch_loss(model, _to(make_batch(data, idx, cfg.task), device), cfg, weights)
        if not torch.isfinite(loss):
            raise RuntimeError(f"adapter loss became {loss.item()} at step {len(losses)}; lower optimizer.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optimizer.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if len(losses) % cfg.logging.progress_interval == 0 or len(losses) == cfg.budget.steps:
            log.info("%s", adapter_progress_line(len(losses), cfg, losses, time.perf_counter() - t0))
    wall = time.perf_counter() - t0
    events = cfg.budget.steps * cfg.budget.batch_events
    return {
        "steps": cfg.budget.steps,
        "events_seen": events,
        "wall_s": wall,
        "events_per_s": events / wall,
        "loss_first": float(np.mean(losses[:10])),
        "loss_last": float(np.mean(losses[-10:])),
    }


@contextlib.contextmanager
def memory_efficient_attention() -> Iterator[None]:
    """Inference without PyTorch's native multi-head-attention fast path. That path (eval mode, no grad)
    writes the whole [heads, L, L] attention matrix: 1.4 GB for one event of 6,000 points, and an 8-event
    batch of sPHENIX-like events with pile-up (up to 11,500 points) took 12 GB and was killed; the regular
    path runs the same arithmetic through scaled_dot_product_attention's memory-efficient CPU kernel."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@torch.no_grad()
def predict(model: torch.nn.Module, data: LabelledSplit, cfg: DownstreamConfig) -> list[np.ndarray]:
    """Per-event predictions in original point order: class per point, or track (query index) per point."""
    model.eval()
    with memory_efficient_attention():
        return _predict(model, data, cfg)


def _predict(model: torch.nn.Module, data: LabelledSplit, cfg: DownstreamConfig) -> list[np.ndarray]:
    preds: list[np.ndarray] = []
    for start in range(0, len(data), cfg.budget.batch_events):
        idx = list(range(start, min(start + cfg.budget.batch_events, len(data))))
        batch = _to(make_batch(data, idx, cfg.task), next(model.parameters()).device)
        views = event_views(batch) if per_event(batch) else [(batch.x, batch.valid)]
        for x, valid in views:
            out = model(x, valid)
            p = (assign_tracks(*out[-1]) if cfg.task == "tracking" else out.argmax(-1)).cpu()  # [b, L]
            preds += [p[row, : int(n)].numpy() for row, n in enumerate(valid.sum(dim=1).tolist())]
    return preds


def score(preds: list[np.ndarray], data: LabelledSplit, cfg: DownstreamConfig) -> dict[str, Any]:
    """Task metrics over all scored events, plus the metric time per 1000 events."""
    t0 = time.perf_counter()
    pred = np.concatenate(preds)
    if cfg.task == "tracking":
        lengths = [len(t) for t in data.track_id]
        event = np.repeat(np.asarray(data.event_ids), lengths)
        truth = {}
        if data.pt is not None and data.eta is not None:
            truth = {"pt": np.concatenate(data.pt), "eta": np.concatenate(data.eta)}
        m = tracking_metrics(
            event, np.concatenate(data.track_id), pred, min_points=cfg.eval_min_points,
            selection=cfg.tracking_selection, **truth,
        )  # fmt: skip
    else:
        names = PID_NAMES if cfg.task == "pid" else ("signal", "noise")
        m = classification_metrics(np.concatenate(getattr(data, cfg.task)), pred, class_names=names)
    m["metric_s_per_1000_events"] = (time.perf_counter() - t0) * 1000.0 / max(len(data), 1)
    return m


def param_groups(model: torch.nn.Module, cfg: DownstreamConfig) -> list[dict[str, Any]]:
    """Optimizer groups: the model's own (a trainable backbone's muP groups) or one group of them all."""
    if hasattr(model, "param_groups"):
        return model.param_groups(cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.backbone_lr_ratio)
    return [{"params": [p for p in model.parameters() if p.requires_grad]}]


def build_run_model(
    cfg: DownstreamConfig, d_in: int, n_mix: int = 1, stem: int | None = None
) -> torch.nn.Module:
    """The adapter for this run behind its input standardisation: on backbone features (`n_mix` > 1: a learned
    mix of that many layers, each d_in / n_mix wide), or AdapterOnly with its linear stem on raw inputs
    (`stem` wide, default cfg.stem_width)."""
    torch.manual_seed(cfg.seed)
    stem = (stem or cfg.stem_width) if run_regime(cfg) == ADAPTER_ONLY else None
    head = build_adapter(cfg.task, d_in // n_mix, cfg.adapter, raw_stem_width=stem)
    return InputAdapter(head, d_in, n_mix).to(resolve_device(cfg.device))
