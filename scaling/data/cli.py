"""`python -m scaling.data simulate|import-tpcpp|inspect`: make, convert and check event datasets.

    python -m scaling.data simulate --out data/sim --events 2000 --seed 1 --profile small
    python -m scaling.data simulate --out data/fake-tpcpp --events 500 --format tpcpp
    python -m scaling.data import-tpcpp /data/TPCpp-10M --out data/tpcpp
    python -m scaling.data inspect data/sim

Errors a user can meet are one line on stderr and exit code 2; `inspect` exits 2 on any inconsistency.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scaling.data.schema import (
    N_PID_CLASSES,
    PID_NAMES,
    PID_RANGE_ERROR,
    SPLIT_NAMES,
    Event,
    offsets_from_counts,
    pid_in_range,
)
from scaling.data.shards import ShardError, ShardReader, read_manifest, sha256_file, write_dataset
from scaling.data.tpcpp import export_tpcpp, import_tpcpp

EXIT_USAGE = 2


def parse_splits(text: str, n_events: int) -> dict[str, int]:
    """'train=0.9,val=0.05,test=0.05' -> event counts summing to n_events (largest remainder)."""
    shares: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not name.strip() or share < 0:
            raise ValueError(f"--splits: bad item {item!r}; write name=share,... e.g. train=0.9,val=0.1")
        if name.strip() not in SPLIT_NAMES:
            raise ValueError(
                f"--splits: split {name.strip()!r} is not one of {', '.join(SPLIT_NAMES)} (the names the "
                "trainer, downstream and sweeps read); rename it"
            )
        shares[name.strip()] = share
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("--splits: shares must add up to more than 0")
    exact = {k: n_events * v / total for k, v in shares.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    by_remainder = sorted(exact, key=lambda k: counts[k] - exact[k])
    for k in by_remainder[: n_events - sum(counts.values())]:
        counts[k] += 1
    return counts


def _simulator(profile: str) -> tuple[Any, Any]:
    """(simulate_events, config): `paper` = SimulatorConfig defaults, `small` = its small preset."""
    try:
        from scaling.data import simulator
    except ImportError as err:
        raise ValueError(
            f"the detector simulator cannot be imported ({err}); reinstall the project"
        ) from None
    cfg = simulator.SimulatorConfig()
    if profile == "small":
        small = getattr(simulator, "small_config", None) or getattr(simulator.SimulatorConfig, "small", None)
        if small is None:
            raise ValueError("--profile small: this simulator has no small preset; use --profile paper")
        cfg = small()
    return simulator.simulate_events, cfg


def cmd_simulate(args: argparse.Namespace) -> int:
    counts = parse_splits(args.splits, args.events)
    simulate_events, cfg = _simulator(args.profile)
    starts = offsets_from_counts(list(counts.values()))
    splits: dict[str, Iterator[Event]] = {
        name: simulate_events(n, args.seed, cfg, start=int(start))
        for (name, n), start in zip(counts.items(), starts, strict=False)
        if n > 0
    }
    if args.format == "tpcpp":
        export_tpcpp(args.out, splits, file_events=args.shard_events)
        print(f"wrote {args.events} events in the TPCpp-10M layout to {args.out}")
        return 0
    config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else repr(cfg)
    provenance = {"source": "simulator", "seed": args.seed, "events": args.events, "splits": counts,
                  "profile": args.profile, "config": config}  # fmt: skip
    manifest = write_dataset(args.out, splits, shard_events=args.shard_events, provenance=provenance)
    print(format_report(summarize(Path(args.out), manifest)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    manifest = import_tpcpp(
        args.src, args.out, shard_events=args.shard_events, skip_bad_events=args.skip_bad_events
    )
    print(format_report(summarize(Path(args.out), manifest)))
    skipped = manifest["provenance"].get("skipped_events", 0)
    if skipped:
        print(f"skipped {skipped} bad source events (listed in the warnings above)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    print(format_report(summarize(root, read_manifest(root))))
    return 0


def _shard_summary(reader: ShardReader, block_events: int = 4096) -> dict[str, Any]:
    """Per-event point and track counts, PID counts and noise count of one shard (vectorised per block)."""
    points, tracks, pid, noise = [], [], np.zeros(N_PID_CLASSES, np.int64), 0
    n = len(reader)
    for lo in range(0, n, block_events):
        block = reader.read_block(lo, min(n, lo + block_events))
        c = block.cols
        counts = np.diff(c["point_offsets"])
        finite = np.isfinite(c["points"]).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            event = int(np.searchsorted(c["point_offsets"], row, side="right") - 1)
            raise ShardError(reader.path, "NaN/inf coordinate", event=lo + event)
        if not pid_in_range(c["pid"]):
            raise ShardError(reader.path, PID_RANGE_ERROR)
        owner = np.repeat(np.arange(counts.size), counts)
        labelled = c["track_id"] >= 0
        pairs = np.unique(np.stack([owner[labelled], c["track_id"][labelled]]), axis=1)
        tracks.append(np.bincount(pairs[0], minlength=counts.size))
        points.append(counts)
        pid += np.bincount(c["pid"].astype(np.int64), minlength=N_PID_CLASSES)
        noise += int(c["noise"].astype(np.int64).sum())
    return {"points": points, "tracks": tracks, "pid": pid, "noise": noise}


def summarize(root: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check each shard against the manifest (checksum, counts, offsets, NaN, PID range); split figures."""
    report: dict[str, dict[str, Any]] = {}
    for split, info in manifest["splits"].items():
        points, tracks, pid, noise = [], [], np.zeros(N_PID_CLASSES, np.int64), 0
        for shard in info["shards"]:
            path = root / shard["file"]
            if not path.is_file():
                raise ShardError(path, "listed in the manifest but missing; re-create the dataset")
            if sha256_file(path) != shard["sha256"]:
                raise ShardError(path, "sha256 differs from the manifest; the file changed, re-create it")
            reader = ShardReader(path)
            part = _shard_summary(reader)
            reader.close()
            got = int(sum(p.sum() for p in part["points"])), int(sum(p.size for p in part["points"]))
            if got != (shard["n_points"], shard["n_events"]):
                raise ShardError(path, f"holds {got[1]} events / {got[0]} points, manifest says "
                                 f"{shard['n_events']} / {shard['n_points']}")  # fmt: skip
            points += part["points"]
            tracks += part["tracks"]
            pid, noise = pid + part["pid"], noise + part["noise"]
        n_events = int(sum(p.size for p in points))
        if info.get("n_events", n_events) != n_events:
            raise ValueError(f"{root / 'manifest.json'}: split {split!r} lists n_events {info['n_events']} "
                             f"but its shards hold {n_events}; re-create the dataset")  # fmt: skip
        report[split] = _split_figures(points, tracks, pid, noise)
    return report


def _split_figures(points: list, tracks: list, pid: np.ndarray, noise: int) -> dict[str, Any]:
    per_event = np.concatenate(points) if points else np.zeros(0, np.int64)
    per_track = np.concatenate(tracks) if tracks else np.zeros(0, np.int64)
    total = max(int(per_event.sum()), 1)
    describe = (lambda a: (int(a.min()), float(np.median(a)), int(a.max()))) if per_event.size else None
    return {
        "events": int(per_event.size),
        "points": int(per_event.sum()),
        "points_per_event": describe(per_event) if describe else None,
        "tracks_per_event": describe(per_track) if describe else None,
        "pid_fractions": {name: float(pid[i] / total) for i, name in enumerate(PID_NAMES)},
        "noise_fraction": noise / total,
    }


def format_report(report: dict[str, dict[str, Any]]) -> str:
    lines = []
    for split, fig in report.items():
        lines.append(f"[{split}] events {fig['events']}, spacepoints {fig['points']}")
        for key in ("points_per_event", "tracks_per_event"):
            if fig[key]:
                lo, med, hi = fig[key]
                lines.append(f"  {key.replace('_', ' ')}: min {lo}  median {med:g}  max {hi}")
        pid = "  ".join(f"{k} {v:.3f}" for k, v in fig["pid_fractions"].items())
        lines.append(f"  pid fractions: {pid}")
        lines.append(f"  noise fraction: {fig['noise_fraction']:.3f}")
    return "\n".join(lines)
