"""Orchestrates one downstream run into a run directory (the `python -m analysis.downstream` entry point).

Documented behaviour on bad input (each a `ValueError` with one line naming the thing and the fix):
- a label budget (or test size) larger than its split: error, never silently fewer events;
- a split whose events carry no track labels (every track_id = -1, as in unlabelled pretraining data): error;
- a backbone of another width or objective than `expect_width` / `expect_objective` (frozen, finetune,
  scratch alike): error;
- `regime=finetune` or `scratch` with `backbone=adapter_only`: error at config load (it needs a backbone);
- `layers=` naming a layer index the backbone lacks: error naming the valid range;
- events with no true track are kept: for classification they are ordinary points, for tracking every query
  learns "no object" there and `tracking_metrics` counts them in `n_events_without_tracks`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from analysis.downstream.features import LabelledSplit, load_or_extract
from analysis.downstream.sources import BackboneSource, RawSource, backbone_width
from analysis.downstream.train import (
    ADAPTER_ONLY,
    DownstreamConfig,
    predict,
    run_regime,
    score,
    train_adapter,
)
from scaling.atomic import write_json_atomic, write_text_atomic
from scaling.config import dump_yaml
from scaling.data.schema import Event
from scaling.rundir import (
    COMPLETED,
    CONFIG,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    FAILED,
    RUNNING,
    update_status,
)

log = logging.getLogger(__name__)


def split_size(manifest: dict[str, Any], split: str, where: str) -> int:
    """Events in `split` according to the manifest (its shard list)."""
    splits = manifest.get("splits", {})
    if split not in splits:
        raise ValueError(f"{where}: no split {split!r} (has {', '.join(sorted(splits)) or 'none'})")
    info = splits[split]
    if isinstance(info, dict) and "n_events" in info:
        return int(info["n_events"])
    shards = info.get("shards", info) if isinstance(info, dict) else info
    return int(sum(int(s["n_events"]) for s in shards))


def iter_split(dataset: str, split: str, block_events: int = 64) -> Iterator[Event]:
    """The split's events in storage order (the order every label budget is a prefix of), read in blocks."""
    from scaling.data.shards import ShardReader, read_manifest

    root = Path(dataset)
    start = 0
    for shard in read_manifest(root)["splits"][split]["shards"]:
        reader = ShardReader(root / shard["file"])
        n = int(shard["n_events"])
        for lo in range(0, n, block_events):
            for k, event in enumerate(reader.read_events(lo, min(lo + block_events, n))):
                event.event_id = start + lo + k
                yield event
        reader.close()
        start += n


def check_budget(n: int, available: int, field: str, split: str, dataset: str) -> None:
    if n > available:
        raise ValueError(
            f"{field}={n} exceeds the {available} events of split '{split}' in {dataset}; "
            f"lower {field} or generate more events"
        )


def check_labels(data: LabelledSplit, task: str, split: str, dataset: str) -> None:
    """A split without particle truth (every track_id = -1) cannot train or score any task."""
    if not any((np.asarray(t) >= 0).any() for t in data.track_id):
        raise ValueError(
            f"split '{split}' of {dataset} carries no labels for task {task!r} (every track_id is -1); "
            "use a labelled split (train/validation/test of the labelled data)"
        )


def _source(cfg: DownstreamConfig, stats: dict[str, Any]) -> Any:
    """What the run's training reads: raw inputs (AdapterOnly), cached frozen features, or raw inputs with
    their serialisation rank for a trainable backbone (finetune, scratch). A backbone's config is checked
    (width, objective, layer indices) before anything is computed."""
    from analysis.downstream.regimes import RankedRawSource

    regime = run_regime(cfg)
    if regime == ADAPTER_ONLY and cfg.backbone == ADAPTER_ONLY:
        return RawSource(stats)
    bb = BackboneSource.load(
        cfg.backbone, cfg.step, stats, layers=cfg.layers,
        expect_width=cfg.expect_width, expect_objective=cfg.expect_objective,
    )  # fmt: skip
    if regime == ADAPTER_ONLY:  # the baseline at this backbone's width and input normalisation
        return RawSource(stats, energy=bb.normalizer.energy, stem_width=backbone_width(bb.train_cfg))
    return bb if regime == "frozen" else RankedRawSource(bb.train_cfg, stats)


def load_splits(cfg: DownstreamConfig) -> tuple[LabelledSplit, LabelledSplit, Any]:
    """(train prefix, test prefix, feature source), through the cache."""
    from scaling.data.shards import read_manifest

    manifest = read_manifest(cfg.dataset)
    for field, n, split in (
        ("n_train_events", cfg.n_train_events, cfg.train_split),
        ("n_eval_events", cfg.n_eval_events, cfg.eval_split),
    ):
        check_budget(n, split_size(manifest, split, cfg.dataset), field, split, cfg.dataset)
    source = _source(cfg, manifest["stats"])
    cache = Path(cfg.cache_dir) if cfg.cache_dir else None
    out = []
    for split, n in ((cfg.train_split, cfg.n_train_events), (cfg.eval_split, cfg.n_eval_events)):
        data = load_or_extract(
            source, iter_split(cfg.dataset, split), split=split, n_events=n, cache_dir=cache
        )
        check_labels(data, cfg.task, split, cfg.dataset)
        out.append(data)
    return out[0], out[1], source


def save_predictions(path: Path, data: LabelledSplit, preds: list[np.ndarray], n: int) -> None:
    """Points, truth and predictions of the first `n` test events (for the event display)."""
    tmp = path.with_suffix(".h5.tmp")
    with h5py.File(tmp, "w") as f:
        for i in range(min(n, len(data))):
            g = f.create_group(f"event-{int(data.event_ids[i])}")
            g["points"], g["pred"] = data.points[i], preds[i]
            g["track_id"], g["pid"], g["noise"] = data.track_id[i], data.pid[i], data.noise[i]
    tmp.replace(path)


def _status(out_dir: Path, state: str, reason: str | None = None, exit_code: int | None = None) -> None:
    """Merge state into status.json (scaling/rundir.py: exit codes 0 done, 2 bad input, 4 run time); what the
    launcher recorded there (attempts, job ids) stays, an unreadable file is rewritten whole."""
    update_status(out_dir, state=state, reason=reason, exit_code=exit_code)


def run_downstream(cfg: DownstreamConfig, out_dir: Path) -> dict[str, Any]:
    """Train and score one adapter; writes config.yaml, status.json, metrics.json, predictions.h5."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / CONFIG, dump_yaml(cfg))
    _status(out_dir, RUNNING)
    t0 = time.perf_counter()
    try:
        train, test, source = load_splits(cfg)
        return run_on_splits(
            cfg, out_dir, train, test, source.width, feature_s=time.perf_counter() - t0, source=source
        )
    except (ValueError, RuntimeError) as err:
        code = EXIT_CONFIG if isinstance(err, ValueError) else EXIT_FAILED
        _status(out_dir, FAILED, reason=str(err), exit_code=code)
        raise


def run_on_splits(
    cfg: DownstreamConfig,
    out_dir: Path,
    train: LabelledSplit,
    test: LabelledSplit,
    width: int,
    feature_s: float = 0.0,
    source: Any = None,
) -> dict[str, Any]:
    """The part of a run after feature extraction: train, predict, score, write the run directory
    (`input_stats.json`: the training-split statistics the adapter's inputs are standardised with)."""
    from analysis.downstream.regimes import build_regime_model

    out_dir.mkdir(parents=True, exist_ok=True)
    model, input_stats = build_regime_model(cfg, width, train, source)
    write_json_atomic(out_dir / "input_stats.json", input_stats)
    adapter = getattr(model, "adapter", model)  # a trainable backbone is not counted as adapter
    n_params = sum(p.numel() for p in adapter.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fit = train_adapter(model, train, cfg)
    preds = predict(model, test, cfg)
    metrics = score(preds, test, cfg)
    result = {
        "task": cfg.task,
        "backbone": cfg.backbone,
        "regime": run_regime(cfg),
        "layers": cfg.layers,
        "standardize": cfg.standardize,
        "step": cfg.step,
        "feature_width": width,
        "adapter_params": int(n_params),
        "trainable_params": int(n_trainable),
        "n_train_events": len(train),
        "n_eval_events": len(test),
        "seed": cfg.seed,
        "metrics": metrics,
        "train": fit,
        "feature_s": feature_s,
        "threads": torch.get_num_threads(),
    }
    write_json_atomic(out_dir / "metrics.json", result)
    save_predictions(out_dir / "predictions.h5", test, preds, cfg.n_display_events)
    _status(out_dir, COMPLETED, exit_code=EXIT_OK)
    return result
