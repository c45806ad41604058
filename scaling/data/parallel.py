"""MPI-parallel dataset writing: ranks split the shards, rank 0 writes the manifest after a gather.

    mpirun -np 4 python -m scaling.data simulate --out data/sim --events 100000 --seed 1 --mpi
    srun -n 4 --mpi=pmix python -m scaling.data import-tpcpp /data/TPCpp-10M --out data/tpcpp --mpi

Every rank plans the same shard list (`shards.plan_shards`), takes one contiguous block of it
(`assign_shards`), makes and writes those shards, and folds their spacepoints into its own statistics
accumulator. One gather brings the manifest entries, the accumulators and any failure to rank 0: if a rank
failed, every rank removes the shards it wrote and rank 0 reports the failed shard in one line; otherwise
rank 0 merges the statistics (order-independent, see `stats`) and writes the manifest. The dataset is byte
for byte the one a single process writes with the same arguments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from scaling.data.schema import Event
from scaling.data.shards import (
    COMPRESSION,
    ShardTask,
    begin_dataset,
    finish_dataset,
    stats_split_of,
    write_task,
)
from scaling.data.stats import StatsAccumulator

log = logging.getLogger(__name__)

# Variables an MPI launcher sets in every rank: Open MPI's mpirun, MPICH/Hydra and Slurm's PMI-2, PMIx.
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


class RankFailed(ValueError):
    """Another rank failed; rank 0 reports it, so this rank exits quietly (`report` False)."""

    report = False


def assign_shards(n_shards: int, n_ranks: int, rank: int) -> range:
    """The contiguous block of shard indices rank `rank` writes: sizes differ by at most one, and the
    earlier ranks take the larger blocks. Contiguous, so a rank cutting shards from large source files
    reads each file once."""
    if n_ranks > n_shards:
        raise ValueError(
            f"--mpi: {n_ranks} ranks for {n_shards} shards; start at most {n_shards} ranks "
            f"(mpirun -np {n_shards}) or lower --shard-events"
        )
    base, extra = divmod(n_shards, n_ranks)
    lo = rank * base + min(rank, extra)
    return range(lo, lo + base + (rank < extra))


def open_world(environ: Mapping[str, str] | None = None) -> Any:
    """MPI.COMM_WORLD of a job started by an MPI launcher; a one-line ValueError otherwise."""
    env = os.environ if environ is None else environ
    if not any(name in env for name in LAUNCHER_VARIABLES):
        raise ValueError(
            "--mpi: this process was not started by an MPI launcher; run it as "
            "`mpirun -np N python -m scaling.data ... --mpi` (or srun --mpi=pmix), or drop --mpi"
        )
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ValueError(
            f"--mpi needs mpi4py ({err}); install it with `pip install -e '.[mpi]'` (and Open MPI or "
            "MPICH), or drop --mpi"
        ) from None
    return MPI.COMM_WORLD


def write_dataset_mpi(
    comm: Any,
    out_dir: str | os.PathLike[str],
    tasks: list[ShardTask],
    make_events: Callable[[ShardTask], Iterable[Event]],
    *,
    provenance: dict[str, Any],
    compression: str | None = COMPRESSION,
) -> dict[str, Any] | None:
    """Write `tasks` across the ranks of `comm`; the manifest on rank 0, None on the others.

    Raises ValueError naming the failed rank and shard on rank 0 (RankFailed on the others)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    try:
        mine = [tasks[i] for i in assign_shards(len(tasks), size, rank)]
    except ValueError as err:  # every rank sees it; rank 0 alone says so
        if rank != 0:
            raise RankFailed(str(err)) from None
        raise
    splits = list(dict.fromkeys(t.split for t in tasks))
    stats_split = stats_split_of(splits)
    out = begin_dataset(out_dir) if rank == 0 else Path(out_dir)
    comm.Barrier()  # the old manifest is gone before any rank writes a shard
    acc = StatsAccumulator()
    entries: list[dict[str, Any]] = []
    failure = None
    for n, task in enumerate(mine, 1):
        try:
            events = list(make_events(task))
            entries.append(write_task(out, task, events, compression=compression,
                                      acc=acc if task.split == stats_split else None))  # fmt: skip
        except Exception as err:  # reported by rank 0 as one line; every rank then removes its shards
            failure = f"rank {rank} failed writing shard {task.file}: {err}"
            break
        log.info("rank %d: %d/%d shards written (%s)", rank, n, len(mine), task.file)
    acc.compact()
    gathered = comm.gather((entries, acc, failure), root=0)
    manifest, message = None, None
    if rank == 0:
        failures = [f for _, _, f in gathered if f is not None]
        message = failures[0] if failures else None
        if message is None:
            total = StatsAccumulator()
            for _, part, _ in gathered:
                total.merge(part)
            all_entries = [e for part_entries, _, _ in gathered for e in part_entries]
            try:
                manifest = finish_dataset(out, splits, all_entries, total, provenance)
            except Exception as err:
                message = f"rank 0 failed writing the manifest: {err}"
    message = comm.bcast(message, root=0)
    if message is not None:
        for entry in entries:  # no manifest, and no shard of a dataset that was never finished
            (out / entry["file"]).unlink(missing_ok=True)
        comm.Barrier()
        if rank == 0:
            raise ValueError(f"{message}; no manifest was written, fix the cause and rerun")
        raise RankFailed(message)
    return manifest
