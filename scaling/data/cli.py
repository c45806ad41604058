"""`python -m scaling.data simulate|import-tpcpp|inspect`: make, convert and check event datasets.

    python -m scaling.data simulate --out data/sim --events 2000 --seed 1 --profile sphenix
    python -m scaling.data simulate --out data/fake-tpcpp --events 500 --format tpcpp
    python -m scaling.data import-tpcpp /data/TPCpp-10M --out data/tpcpp
    python -m scaling.data inspect data/sim [--split train]   # distributions beside the paper's statements
    mpirun -np 4 python -m scaling.data simulate --out data/sim --events 100000 --mpi   (see parallel.py)

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

from scaling.data.parallel import assign_shards, open_world, write_dataset_mpi
from scaling.data.schema import (
    N_PID_CLASSES,
    PID_NAMES,
    PID_RANGE_ERROR,
    SPLIT_NAMES,
    Event,
    offsets_from_counts,
    pid_in_range,
)
from scaling.data.shards import (
    ShardError,
    ShardReader,
    ShardTask,
    plan_shards,
    read_manifest,
    sha256_file,
    write_dataset,
)
from scaling.data.tpcpp import (
    PRETRAIN_SPLIT,
    RangeReader,
    discover,
    export_tpcpp,
    import_tpcpp,
    tpcpp_provenance,
)

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
    """(simulate_events, config) of a named profile (`simulator.PROFILES`)."""
    try:
        from scaling.data import simulator
    except ImportError as err:
        raise ValueError(
            f"the detector simulator cannot be imported ({err}); reinstall the project"
        ) from None
    return simulator.simulate_events, simulator.profile_config(profile)


def cmd_simulate(args: argparse.Namespace) -> int:
    counts = parse_splits(args.splits, args.events)
    simulate_events, cfg = _simulator(args.profile)
    starts = offsets_from_counts(list(counts.values()))
    if args.mpi:
        return _simulate_mpi(args, counts, simulate_events, cfg)
    splits: dict[str, Iterator[Event]] = {
        name: simulate_events(n, args.seed, cfg, start=int(start))
        for (name, n), start in zip(counts.items(), starts, strict=False)
        if n > 0
    }
    if args.format == "tpcpp":
        export_tpcpp(args.out, splits, file_events=args.shard_events)
        print(f"wrote {args.events} events in the TPCpp-10M layout to {args.out}")
        return 0
    manifest = write_dataset(args.out, splits, shard_events=args.shard_events,
                             provenance=_simulator_provenance(args, counts, cfg))  # fmt: skip
    print(format_report(summarize(Path(args.out), manifest)))
    return 0


def _simulator_provenance(args: argparse.Namespace, counts: dict[str, int], cfg: Any) -> dict[str, Any]:
    config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else repr(cfg)
    return {"source": "simulator", "seed": args.seed, "events": args.events, "splits": counts,
            "profile": args.profile, "config": config}  # fmt: skip


def _simulate_mpi(args: argparse.Namespace, counts: dict[str, int], simulate_events: Any, cfg: Any) -> int:
    """`simulate --mpi`: each rank simulates and writes a block of shards (event i is rng([seed, i]))."""
    if args.format != "hdf5":
        raise ValueError("--mpi writes HDF5 shards; drop --format tpcpp, or drop --mpi")
    comm = open_world()
    counts = {name: n for name, n in counts.items() if n > 0}
    starts = dict(zip(counts, offsets_from_counts(list(counts.values())).tolist(), strict=False))
    tasks = plan_shards(counts, args.shard_events)

    def make(task: ShardTask) -> Iterator[Event]:
        return simulate_events(task.n_events, args.seed, cfg, start=starts[task.split] + task.first_event)

    manifest = write_dataset_mpi(comm, args.out, tasks, make,
                                 provenance=_simulator_provenance(args, counts, cfg))  # fmt: skip
    return _report_mpi(comm, args.out, manifest)


def _report_mpi(comm: Any, out: str, manifest: dict[str, Any] | None) -> int:
    """Every rank checks the shards it wrote; rank 0 prints the report a single process prints."""
    manifest = comm.bcast(manifest, root=0)
    shards = [s for info in manifest["splits"].values() for s in info["shards"]]
    mine = [shards[i] for i in assign_shards(len(shards), comm.Get_size(), comm.Get_rank())]
    try:
        parts: dict[str, Any] | str = {s["file"]: check_shard(Path(out), s) for s in mine}
    except (ValueError, OSError) as err:  # sent to rank 0, so no rank waits for a gather that never comes
        parts = str(err)
    gathered = comm.gather(parts, root=0)
    if comm.Get_rank() != 0:
        return 0
    failed = [p for p in gathered if isinstance(p, str)]
    if failed:
        raise ValueError(f"checking the written dataset: {failed[0]}")
    print(format_report(summarize(Path(out), manifest, {k: v for p in gathered for k, v in p.items()})))
    return 0


def _import_mpi(args: argparse.Namespace) -> int:
    """`import-tpcpp --mpi`: shards cut from the source files' event stream, a block of them per rank."""
    if args.skip_bad_events:
        raise ValueError(
            "--skip-bad-events moves shard boundaries, which --mpi ranks must know in advance; "
            "import once without --mpi, or fix the source events"
        )
    comm = open_world()
    found = discover(args.src)
    order = [s for s in ("train", "val", "test", PRETRAIN_SPLIT) if s in found]
    readers = {s: RangeReader(found[s]) for s in order}
    tasks = plan_shards({s: sum(readers[s].counts) for s in order}, args.shard_events)

    def make(task: ShardTask) -> Iterator[Event]:
        return readers[task.split].events(task.first_event, task.first_event + task.n_events)

    manifest = write_dataset_mpi(comm, args.out, tasks, make,
                                 provenance=tpcpp_provenance(args.src, found))  # fmt: skip
    return _report_mpi(comm, args.out, manifest)


def cmd_import(args: argparse.Namespace) -> int:
    if args.mpi:
        return _import_mpi(args)
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
    manifest = read_manifest(root)
    if args.split is not None:
        if args.split not in manifest["splits"]:
            have = ", ".join(manifest["splits"]) or "none"
            raise ValueError(f"{root}: no split {args.split!r} (it has: {have}); pick one with --split")
        manifest = {**manifest, "splits": {args.split: manifest["splits"][args.split]}}
    print(format_distributions(summarize(root, manifest)))
    return 0


def _shard_summary(reader: ShardReader, block_events: int = 4096) -> dict[str, Any]:
    """Per-event point and track counts, PID counts and noise count of one shard (vectorised per block)."""
    points, tracks, per_track = [], [], []
    pid, noise = np.zeros(N_PID_CLASSES, np.int64), 0
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
        pairs, hits = np.unique(
            np.stack([owner[labelled], c["track_id"][labelled]]), axis=1, return_counts=True
        )
        tracks.append(np.bincount(pairs[0], minlength=counts.size))
        per_track.append(hits)
        points.append(counts)
        pid += np.bincount(c["pid"].astype(np.int64), minlength=N_PID_CLASSES)
        noise += int(c["noise"].astype(np.int64).sum())
    return {"points": points, "tracks": tracks, "per_track": per_track, "pid": pid, "noise": noise}


def check_shard(root: Path, shard: dict[str, Any]) -> dict[str, Any]:
    """Check one manifest entry against its file (checksum, counts, offsets, NaN, PID range): its figures."""
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
    return part


def summarize(
    root: Path, manifest: dict[str, Any], parts: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-split figures of a dataset, every shard checked (`check_shard`) unless its figures are in
    `parts` (file -> figures, from ranks that checked their own shards)."""
    report: dict[str, dict[str, Any]] = {}
    for split, info in manifest["splits"].items():
        points, tracks, per_track, pid, noise = [], [], [], np.zeros(N_PID_CLASSES, np.int64), 0
        for shard in info["shards"]:
            part = parts[shard["file"]] if parts is not None else check_shard(root, shard)
            points += part["points"]
            tracks += part["tracks"]
            per_track += part["per_track"]
            pid, noise = pid + part["pid"], noise + part["noise"]
        n_events = int(sum(p.size for p in points))
        if info.get("n_events", n_events) != n_events:
            raise ValueError(f"{root / 'manifest.json'}: split {split!r} lists n_events {info['n_events']} "
                             f"but its shards hold {n_events}; re-create the dataset")  # fmt: skip
        report[split] = _split_figures(points, tracks, per_track, pid, noise)
    return report


def _split_figures(
    points: list, tracks: list, per_track: list, pid: np.ndarray, noise: int
) -> dict[str, Any]:
    per_event = np.concatenate(points) if points else np.zeros(0, np.int64)
    tracks_per_event = np.concatenate(tracks) if tracks else np.zeros(0, np.int64)
    hits = np.concatenate(per_track) if per_track else np.zeros(0, np.int64)
    total = max(int(per_event.sum()), 1)
    describe = (lambda a: (int(a.min()), float(np.median(a)), int(a.max()))) if per_event.size else None
    return {
        "events": int(per_event.size),
        "points": int(per_event.sum()),
        "points_per_event": describe(per_event) if describe else None,
        "tracks_per_event": describe(tracks_per_event) if describe else None,
        "distributions": {
            "spacepoints per event": per_event,
            "truth tracks per event": tracks_per_event,
            "points per truth track": hits,
        },
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


# What the paper says of TPCpp-10M (appendix A.3, Figure 7; Figure 8 for the classes) and how its words are
# read here: "a few hundred" as an event minimum below 1000, "tens of thousands" as a maximum of at least
# 10 000, "under 10" as a minimum below 10, "nearly 100" as a maximum between 70 and 150.
PAPER_RANGES: dict[str, tuple[str, Any]] = {
    "spacepoints per event": (
        "a few hundred to tens of thousands",
        lambda lo, hi: lo < 1000 and hi >= 10_000,
    ),
    "truth tracks per event": ("under 10 to nearly 100", lambda lo, hi: lo < 10 and 70 <= hi <= 150),
    "points per truth track": ("not stated", None),
}
QUANTILES = (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0)


def _number(value: float) -> str:
    """Counts as integers; fractional quantiles below 100 with three significant digits."""
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 or value >= 100 else f"{value:.3g}"


def format_distributions(report: dict[str, dict[str, Any]]) -> str:
    """Per split: quantiles of points and tracks per event and points per track beside the paper's words."""
    head = ["", "min", "1%", "10%", "median", "90%", "99%", "max", "the paper (TPCpp-10M)", "ends match"]
    lines = []
    for split, fig in report.items():
        lines.append(f"[{split}] events {fig['events']}, spacepoints {fig['points']}")
        rows = [head]
        for name, values in fig["distributions"].items():
            words, check = PAPER_RANGES[name]
            if values.size == 0:
                rows.append([name, *["-"] * 7, words, "-"])
                continue
            q = np.quantile(values, QUANTILES)
            verdict = "-" if check is None else ("yes" if check(q[0], q[-1]) else "no")
            rows.append([name, *(_number(v) for v in q), words, verdict])
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(row[1:8], widths[1:8], strict=True)
            ]
            lines.append("  " + "  ".join([*cells, row[8].ljust(widths[8]), row[9]]).rstrip())
        pid = "  ".join(f"{k} {v:.3f}" for k, v in fig["pid_fractions"].items())
        lines.append(f"  pid fractions: {pid}  (the paper: Figure 8, no numbers in the text)")
        lines.append(f"  noise fraction: {fig['noise_fraction']:.3f}  (points of particles below 60 MeV/c; "
                     "the paper: Figure 8, no number in the text)")  # fmt: skip
    lines.append("the paper states ranges only; 'ends match' reads them as: points min < 1000 and "
                 "max >= 10000, tracks min < 10 and max 70-150 (over enough events)")  # fmt: skip
    return "\n".join(lines)
