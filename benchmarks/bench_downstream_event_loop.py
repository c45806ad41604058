"""Adapter training on CPU, one event at a time against the padded batch, timed in one process.

    .venv/bin/python benchmarks/bench_downstream_event_loop.py [--dataset data/cpu_study] [--steps 8]

Events take their point counts from the dataset's train split when it exists (the CPU study's: a few hundred
to 8,800 points, mean 1,200), else from a log-normal of the same shape; features are random, width 128 (the
CPU study's largest backbone). Both paths train the same PID adapter (the downstream defaults: d_proj 32,
4 heads, one attention layer) for `--steps` steps of 8 events, twice in alternation; it prints the better
events/s of each and the ratio. Attention over a padded batch costs batch x (longest event)^2; event by event
each costs its own n^2.
Measured here (2 cores shared with two trainings and two adapter runs; the CPU study's first 25 train events,
186..3,547 points): 13.9 against 3.2 events/s, 4.3x.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import analysis.downstream.train as train  # noqa: E402
from analysis.downstream.config import AdapterConfig, DownstreamConfig  # noqa: E402
from analysis.downstream.features import LabelledSplit  # noqa: E402


def event_sizes(dataset: Path, n: int, rng: np.random.Generator) -> np.ndarray:
    """Point counts of the first `n` train events of `dataset`, or log-normal ones like them."""
    manifest = dataset / "manifest.json"
    if manifest.is_file():
        import h5py

        sizes: list[int] = []
        for shard in sorted((dataset / "train").glob("*.h5")):
            with h5py.File(shard, "r") as f:
                sizes += np.diff(f["point_offsets"][:]).tolist()
            if len(sizes) >= n:
                return np.asarray(sizes[:n])
    return np.clip(rng.lognormal(np.log(1000), 0.6, n), 50, 12000).astype(int)


def split_of(sizes: np.ndarray, width: int, rng: np.random.Generator) -> LabelledSplit:
    feats = [rng.normal(size=(int(n), width)).astype(np.float32) for n in sizes]
    pid = [rng.integers(0, 5, int(n)).astype(np.int8) for n in sizes]
    empty = [np.zeros(int(n), np.int64) for n in sizes]
    pts = [np.zeros((int(n), 4), np.float32) for n in sizes]
    return LabelledSplit(feats, empty, pid, [p.astype(np.uint8) * 0 for p in pid], pts, None, None,
                         np.arange(len(sizes)))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="data/cpu_study")
    parser.add_argument("--events", type=int, default=25)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    sizes = event_sizes(REPO / args.dataset, args.events, rng)
    data = split_of(sizes, 128, rng)
    cfg = DownstreamConfig(task="pid", backbone="runs/any", adapter=AdapterConfig())
    cfg.budget.steps, cfg.budget.batch_events, cfg.logging.progress_interval = args.steps, 8, 10**6
    torch.manual_seed(0)
    model = train.build_run_model(cfg, 128)
    per_event = train.per_event
    paths = {"event by event": per_event, "padded batch": lambda batch: False}
    rates: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(2):
        for name, rule in paths.items():
            train.per_event = rule
            rates[name].append(train.train_adapter(model, data, cfg)["events_per_s"])
    train.per_event = per_event
    best = {k: max(v) for k, v in rates.items()}
    print(f"{len(sizes)} events, {sizes.min()}..{sizes.max()} points (mean {sizes.mean():.0f}); "
          f"{args.steps} steps of 8 events, width 128, one thread")  # fmt: skip
    for name, rate in best.items():
        print(f"  {name:15s} {rate:6.2f} events/s")
    ratio = best["event by event"] / best["padded batch"]
    print(f"ratio event by event / padded: {ratio:.2f}x")
    print(json.dumps({"events_per_s": best, "ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
