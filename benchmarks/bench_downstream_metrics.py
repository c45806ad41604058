"""Downstream speed: metric time per 1000 test events, and adapter training throughput (events/s).

    .venv/bin/python benchmarks/bench_downstream_metrics.py          # quick (< 60 s)
    .venv/bin/python benchmarks/bench_downstream_metrics.py --full   # bigger events, more steps

References measured in the same run: the vectorised `tracking_metrics` against a per-event loop over
scikit-learn's `adjusted_rand_score` (ARI only, so the reference does less work); adapter training against
the same adapter's inference (forward only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # standalone: the repo root, not an install

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from analysis.downstream.adapters import AdapterConfig  # noqa: E402
from analysis.downstream.features import LabelledSplit  # noqa: E402
from analysis.downstream.metrics import tracking_metrics  # noqa: E402
from analysis.downstream.train import (  # noqa: E402
    AdapterBudgetConfig,
    AdapterScheduleConfig,
    DownstreamConfig,
    build_run_model,
    predict,
    train_adapter,
)


def synthetic_tracking(n_events: int, n_points: int, n_tracks: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ev = np.repeat(np.arange(n_events), n_points)
    true = rng.integers(-1, n_tracks, n_events * n_points)
    pred = np.where(rng.random(true.shape) < 0.9, true, rng.integers(0, n_tracks, true.shape))
    return ev, true, pred


def bench_metrics(n_events: int, n_points: int) -> None:
    ev, true, pred = synthetic_tracking(n_events, n_points, 30)
    t0 = time.perf_counter()
    m = tracking_metrics(ev, true, pred, min_points=3)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    bounds = np.flatnonzero(np.diff(ev)) + 1
    for t, p in zip(np.split(true, bounds), np.split(pred, bounds), strict=True):
        keep = t >= 0
        adjusted_rand_score(t[keep], p[keep])
    ref = time.perf_counter() - t0
    per_k = 1000.0 / n_events
    print(
        f"tracking_metrics: {n_events} events x {n_points} points: {ours * per_k:.3f} s per 1000 events "
        f"(ARI {m['ari_pooled']:.3f}, eff {m['efficiency']:.3f})"
    )
    print(
        f"reference sklearn per-event ARI loop: {ref * per_k:.3f} s per 1000 events; "
        f"ratio reference/ours = {ref / ours:.1f}x"
    )


def _split(n_events: int, n_points: int, width: int, seed: int = 0) -> LabelledSplit:
    rng = np.random.default_rng(seed)
    f = [rng.normal(size=(n_points, width)).astype(np.float32) for _ in range(n_events)]
    t = [rng.integers(-1, 20, n_points) for _ in range(n_events)]
    p = [rng.integers(0, 5, n_points).astype(np.int8) for _ in range(n_events)]
    z = [np.zeros(n_points, np.uint8) for _ in range(n_events)]
    return LabelledSplit(f, t, p, z, [np.zeros((n_points, 4), np.float32)] * n_events, None, None,
                         np.arange(n_events))  # fmt: skip


def bench_training(task: str, n_points: int, width: int, steps: int) -> None:
    torch.set_num_threads(1)
    cfg = DownstreamConfig(
        backbone="runs/x", task=task, adapter=AdapterConfig(n_queries=32, n_decoder_layers=3),
        schedule=AdapterScheduleConfig(warmup_steps=1),
        budget=AdapterBudgetConfig(steps=steps, batch_events=8),
    )  # fmt: skip
    data = _split(32, n_points, width)
    model = build_run_model(cfg, width)
    warm = {"schedule": AdapterScheduleConfig(), "budget": AdapterBudgetConfig(steps=1, batch_events=8)}
    train_adapter(model, data, cfg.__class__(**{**cfg.__dict__, **warm}))
    fit = train_adapter(model, data, cfg)
    t0 = time.perf_counter()
    predict(model, data, cfg)
    infer = len(data) / (time.perf_counter() - t0)
    print(
        f"adapter training {task}: {fit['events_per_s']:.1f} events/s ({n_points} points/event, "
        f"d_in {width}, 1 thread); inference {infer:.1f} events/s; "
        f"ratio train/inference = {fit['events_per_s'] / infer:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    bench_metrics(2000 if args.full else 1000, 2000 if args.full else 500)
    n_points, steps = (2000, 20) if args.full else (400, 5)
    for task in ("pid", "tracking"):
        bench_training(task, n_points, 256, steps)


if __name__ == "__main__":
    main()
