"""Streaming, shuffled, resumable event loader over a sharded HDF5 dataset.

The order of one epoch is a pure function of (seed, epoch, fraction, shard sizes):
  1. nested subset: fraction f keeps the first ceil(f * n) events of a fixed, seed-independent permutation, so
     the paper's 1 % c 2.4 % c 11.6 % c 20 % c 47.6 % c 100 % subsets are nested for every seed;
  2. shard-level shuffle: the shards are visited in an order drawn from (seed, epoch), each shard's selected
     events in storage order (so reads are sequential);
  3. window shuffle: the sequence is cut into windows of `shuffle_buffer` events, each permuted (a
     within-shard buffer: a window spans at most two shards);
  4. ranks: rank r takes the r-th of `world_size` contiguous, near-equal pieces (the pieces are disjoint and
     cover the epoch: no event twice, none skipped).
Within a rank, DataLoader workers take positions round-robin (worker w: running positions w, w + W, ...).
A torch DataLoader with `batch_size=None` collects one item per worker in turn, so the sequence the main
process sees is exactly the rank's sequence whatever the number of workers, and the cursor is just (epoch,
events consumed). The running position continues across epochs, so this holds for `epochs=None` too.

Each yielded event carries `meta = {"epoch", "position", "epoch_events", "file"}`. Iterating in the main
process moves the cursor itself; behind a DataLoader the workers' copies cannot, so the consumer calls
`stream.update_cursor(event)` for what it consumed, then `state_dict()` at checkpoint time.

    >>> stream = EventStream("data/sim", "train", seed=1, rank=0, world_size=2, epochs=None)
    >>> loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from scaling.data.schema import Event, offsets_from_counts
from scaling.data.shards import EventBlock, ShardError, ShardReader, read_manifest

log = logging.getLogger(__name__)

PAPER_FRACTIONS: tuple[float, ...] = (0.01, 0.024, 0.116, 0.2, 0.476, 1.0)
NESTED_SEED = 0x5CA1AB1E  # fixed: subsets must not depend on the run's seed
READ_GAP = 8  # selected events closer than this are read in one bulk block (cheaper than separate reads)
DEFAULT_SHUFFLE_BUFFER = 1024


@lru_cache(maxsize=8)
def _nested_permutation(n_events: int) -> np.ndarray:
    return np.random.default_rng(NESTED_SEED).permutation(n_events)


def nested_subset(n_events: int, fraction: float) -> np.ndarray:
    """Sorted indices of the first ceil(fraction * n) events of a fixed seed-independent permutation."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.arange(n_events, dtype=np.int64)
    keep = math.ceil(round(fraction * n_events, 9))
    return np.sort(_nested_permutation(n_events)[:keep]).astype(np.int64)


def epoch_order(
    shard_sizes: list[int], selected: np.ndarray, *, seed: int, epoch: int, shuffle: bool, shuffle_buffer: int
) -> np.ndarray:
    """Global event indices of one epoch, all ranks together (steps 2 and 3 of the module docstring)."""
    bounds = offsets_from_counts(shard_sizes)
    if not shuffle:
        return selected
    rng = np.random.default_rng([seed, epoch])
    cuts = np.searchsorted(selected, bounds)
    pieces = [selected[cuts[s] : cuts[s + 1]] for s in rng.permutation(len(shard_sizes))]
    order = np.concatenate(pieces) if pieces else selected
    if shuffle_buffer > 1:
        order = order.copy()
        for lo in range(0, order.size, shuffle_buffer):
            window = order[lo : lo + shuffle_buffer]
            order[lo : lo + shuffle_buffer] = window[rng.permutation(window.size)]
    return order


def rank_piece(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of the rank's contiguous share of n positions (sizes differ by at most one)."""
    return rank * n // world_size, (rank + 1) * n // world_size


class EventStream(IterableDataset):
    """Events of one split for one rank, in the deterministic order described in the module docstring.

    `epochs`: how many epochs one iteration runs, counting the cursor's current one (None: forever, the
    epoch number rising each pass). Use `batch_size=None` in a DataLoader (the worker interleaving above holds
    item by item). `skip_bad_events=True` logs every unreadable or non-finite event as a warning and counts
    it in `n_skipped` / `skipped` of the process that read it (each DataLoader worker has its own copy).
    Checksums are not recomputed while streaming: `python -m scaling.data inspect` verifies a dataset.
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike[str],
        split: str,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        fraction: float = 1.0,
        shuffle: bool = True,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        epoch: int = 0,
        epochs: int | None = 1,
        skip_bad_events: bool = False,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1, got rank={rank}, world_size={world_size}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be >= 1 or None (forever), got {epochs}")
        self.root = Path(dataset_dir)
        manifest = read_manifest(self.root)
        if split not in manifest["splits"]:
            have = ", ".join(sorted(manifest["splits"])) or "none"
            raise ValueError(f"{self.root}: no split {split!r} in the manifest (has {have})")
        shards = manifest["splits"][split]["shards"]
        self.split, self.seed, self.rank, self.world_size = split, seed, rank, world_size
        self.fraction, self.shuffle, self.shuffle_buffer = fraction, shuffle, shuffle_buffer
        self.epochs, self.skip_bad_events = epochs, skip_bad_events
        self.files = [self.root / s["file"] for s in shards]
        self.shard_sizes = [int(s["n_events"]) for s in shards]
        self.bounds = offsets_from_counts(self.shard_sizes)
        self.selected = nested_subset(int(self.bounds[-1]), fraction)
        self.epoch, self.consumed = epoch, 0
        self.n_skipped = 0
        self.skipped: list[tuple[str, int]] = []
        self._readers: dict[int, ShardReader] = {}
        self._cache: tuple[int, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"] = {}  # files are opened lazily in each worker
        return state

    @property
    def n_events(self) -> int:
        """Events this rank sees per epoch."""
        lo, hi = rank_piece(self.selected.size, self.rank, self.world_size)
        return hi - lo

    def sequence(self, epoch: int) -> np.ndarray:
        """This rank's global event indices for `epoch` (pure function of the constructor arguments)."""
        if self._cache is None or self._cache[0] != epoch:
            order = epoch_order(self.shard_sizes, self.selected, seed=self.seed, epoch=epoch,
                                shuffle=self.shuffle, shuffle_buffer=self.shuffle_buffer)  # fmt: skip
            lo, hi = rank_piece(order.size, self.rank, self.world_size)
            self._cache = (epoch, order[lo:hi])
        return self._cache[1]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size, "fraction": self.fraction, "split": self.split}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at `state`'s cursor; the order-defining arguments must match the saved ones."""
        for key in ("seed", "rank", "world_size", "fraction", "split"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"data cursor: saved {key}={state[key]!r} but this stream has {getattr(self, key)!r}; "
                    "resume with the same data settings and world size"
                )
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])

    def update_cursor(self, event: Event) -> None:
        """Record that `event` (yielded by this stream, possibly in a worker) has been consumed."""
        self.epoch, self.consumed = int(event.meta["epoch"]), int(event.meta["position"]) + 1
        if self.consumed >= int(event.meta["epoch_events"]):
            self.epoch, self.consumed = self.epoch + 1, 0

    def __iter__(self) -> Iterator[Event]:
        info = get_worker_info()
        wid, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        in_main = info is None
        epoch, start, running = self.epoch, self.consumed, 0
        last = None if self.epochs is None else self.epoch + self.epochs - 1
        while last is None or epoch <= last:
            seq = self.sequence(epoch)
            positions = np.arange(start, seq.size)
            mine = positions[(running + positions - start) % n_workers == wid]
            window = max(self.shuffle_buffer, 64)
            for lo in range(0, mine.size, window):
                for event in self._read(seq, mine[lo : lo + window], epoch):
                    if in_main:
                        self.update_cursor(event)
                    yield event
            running += seq.size - start
            epoch, start = epoch + 1, 0
            if seq.size == 0 and self.epochs is None:
                raise ValueError(f"{self.root}: split {self.split!r} gives rank {self.rank} no events")

    def _reader(self, shard: int) -> ShardReader:
        if shard not in self._readers:
            self._readers[shard] = ShardReader(self.files[shard])
        return self._readers[shard]

    def _read(self, seq: np.ndarray, positions: np.ndarray, epoch: int) -> Iterator[Event]:
        """Events at `positions` of `seq`, read in bulk per run of nearby events, in position order."""
        glob = seq[positions]
        shard = np.searchsorted(self.bounds, glob, side="right") - 1
        local = glob - self.bounds[shard]
        found: dict[int, Event] = {}
        for key in np.unique(shard):
            rows = np.flatnonzero(shard == key)
            rows = rows[np.argsort(local[rows])]
            runs = np.split(rows, np.flatnonzero(np.diff(local[rows]) > READ_GAP) + 1)
            for run in runs:
                found.update(self._read_run(int(key), local, run))
        for row, pos in enumerate(positions):
            event = found.get(row)
            if event is None:
                continue
            event.event_id = int(glob[row])
            event.meta = {"epoch": epoch, "position": int(pos), "epoch_events": int(seq.size),
                          "file": str(self.files[int(shard[row])])}  # fmt: skip
            yield event

    def _read_run(self, shard: int, local: np.ndarray, rows: np.ndarray) -> dict[int, Event]:
        reader = self._reader(shard)
        lo, hi = int(local[rows[0]]), int(local[rows[-1]]) + 1
        out: dict[int, Event] = {}
        try:
            block: EventBlock | None = reader.read_block(lo, hi)
        except ShardError as err:
            if not self.skip_bad_events:
                raise
            block = None
            log.warning("%s; reading events one by one", err)
        for row in rows:
            i = int(local[row])
            try:
                out[int(row)] = block.event(i - lo) if block is not None else reader.read_event(i)
            except ShardError as err:
                if not self.skip_bad_events:
                    raise
                self.n_skipped += 1
                self.skipped.append((str(reader.path), i))
                log.warning("skipped bad event (%d so far this process): %s", self.n_skipped, err)
        return out
