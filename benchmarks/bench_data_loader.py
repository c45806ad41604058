"""Loader throughput against a raw h5py read of the same bytes, and dataset size on disk per compression.

    .venv/bin/python benchmarks/bench_data_loader.py          # quick (< 60 s)
    .venv/bin/python benchmarks/bench_data_loader.py --full   # 4x the events

Reference: reading every dataset of every shard whole with h5py (decompression included), the least work
that gets the same bytes into memory. Loader: `EventStream` (shuffled, 1 process) yielding validated `Event`s.
Goal from the issue: loader / raw >= 0.8. Sizes: bytes on disk per million spacepoints and the compression
ratio (uncompressed column bytes / file bytes) for gzip-1 (the default), lzf and no compression.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from scaling.data.loader import EventStream  # noqa: E402
from scaling.data.schema import Event  # noqa: E402
from scaling.data.shards import write_dataset  # noqa: E402


def source_events(n: int, seed: int) -> tuple[list[Event], str]:
    """Simulated events when the simulator is installed, else helix-free synthetic TPC-like events."""
    try:
        from scaling.data.simulator import simulate_events

        return list(simulate_events(n, seed)), "simulator (paper profile)"
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(300, 4000))
        r = np.round(rng.choice(np.linspace(30.3, 77.6, 48), k) + rng.normal(0, 0.015, k), 3)
        phi = rng.uniform(-np.pi, np.pi, k)
        points = np.column_stack(
            [rng.gamma(2, 120, k), r * np.cos(phi), r * np.sin(phi), rng.normal(0, 40, k)]
        )
        out.append(
            Event(
                points=points.astype(np.float32),
                track_id=np.sort(rng.integers(-1, 60, k)),
                pid=rng.integers(0, 5, k).astype(np.int8),
                noise=(rng.random(k) < 0.05).astype(np.uint8),
            )
        )
    return out, "synthetic (no simulator found)"


def raw_read(root: Path) -> float:
    start = time.perf_counter()
    for path in sorted(root.glob("train/shard-*.h5")):
        with h5py.File(path, "r") as f:
            for name in f:  # every column the loader decodes: points, labels, offsets, track truth
                f[name][...]
    return time.perf_counter() - start


def column_bytes(root: Path) -> int:
    """Uncompressed bytes of every dataset in the shards (the numerator of the compression ratio)."""
    total = 0
    for path in root.glob("train/shard-*.h5"):
        with h5py.File(path, "r") as f:
            total += sum(f[name].nbytes for name in f)
    return total


def loader_read(root: Path, shuffle: bool) -> tuple[float, int]:
    start = time.perf_counter()
    n = sum(e.n_points for e in EventStream(root, "train", shuffle=shuffle, seed=1))
    return time.perf_counter() - start, n


def best_times(root: Path, rounds: int) -> tuple[float, float, float]:
    """Fastest of `rounds` interleaved runs of (raw, loader in order, loader shuffled): on a shared machine
    interleaving exposes all three to the same background load, and the minimum is the least disturbed."""
    times = []
    for _ in range(rounds):
        times.append((raw_read(root), loader_read(root, False)[0], loader_read(root, True)[0]))
    t_raw, t_seq, t_shuf = (min(col) for col in zip(*times, strict=True))
    return t_raw, t_seq, t_shuf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    events, source = source_events(1600 if args.full else 400, seed=0)
    n_points = sum(e.n_points for e in events)
    print(
        f"events {len(events)} ({source}), spacepoints {n_points}, points/event {n_points / len(events):.0f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("gzip", "lzf", None):
            root = Path(tmp) / str(compression)
            write_dataset(root, {"train": events}, shard_events=256, provenance={}, compression=compression)
            disk = sum(p.stat().st_size for p in root.glob("train/*.h5"))
            raw_bytes = column_bytes(root)
            assert loader_read(root, True)[1] == n_points
            t_raw, t_seq, t_shuf = best_times(root, rounds=15 if args.full else 7)
            print(
                f"{str(compression):>5}: {disk / n_points * 1e6 / 2**20:7.1f} MiB per 1M spacepoints, "
                f"compression ratio {raw_bytes / disk:4.2f}; "
                f"raw h5py {n_points / t_raw / 1e6:6.2f} M points/s, "
                f"loader {n_points / t_shuf / 1e6:6.2f} M points/s ({len(events) / t_shuf:7.0f} events/s); "
                f"ratio loader/raw {t_raw / t_shuf:.2f} shuffled, {t_raw / t_seq:.2f} in order (goal >= 0.8)"
            )


if __name__ == "__main__":
    main()
