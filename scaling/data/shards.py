"""Sharded HDF5 datasets: writing (atomic shards, manifest last), reading and verifying shards.

Layout (see `schema`): `<dir>/manifest.json` and `<dir>/<split>/shard-NNNNN.h5`. Each shard is written to a
hidden temporary name, fsynced, checksummed and renamed; the manifest is written atomically after every shard,
and any earlier manifest is removed before the first shard is written, so a killed writer never leaves a
manifest that lists a missing or half-written shard.

    >>> manifest = write_dataset("data/sim", {"train": events}, shard_events=1024, provenance={"source": "x"})
    >>> reader = ShardReader("data/sim/train/shard-00000.h5")
    >>> event = reader.read_event(0)
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from scaling.atomic import fsync_dir, read_json, write_json_atomic
from scaling.data.schema import (
    MANIFEST_NAME,
    PID_RANGE_ERROR,
    POINT_COLUMNS,
    SCHEMA_VERSION,
    SHARD_PATTERN,
    STATS_KEYS,
    TRACK_COLUMNS,
    Event,
    TrackTable,
    offsets_from_counts,
    pid_in_range,
)
from scaling.data.stats import StatsAccumulator
from scaling.iterables import batched

log = logging.getLogger(__name__)

# 16384 rows per chunk: 256 KiB of points, so an event of a few thousand spacepoints spans one or two chunks,
# and chunks are large enough for the compressor to work well (measured in benchmarks/bench_data_loader.py).
CHUNK_ROWS = 16384
# gzip level 1 with the byte-shuffle filter: readable by any HDF5 build (lzf needs h5py's own filter), ~10 %
# smaller than lzf and ~2x slower to decode, still > 10M spacepoints/s per core; gzip-4 gains ~2 % in size for
# ~15 % slower reads. Measured on this machine with benchmarks/bench_data_loader.py.
COMPRESSION = "gzip"
GZIP_LEVEL = 1
COMPRESSIONS = ("gzip", "lzf", None)
STATS_SPLIT = "train"


class ShardError(ValueError):
    """A shard (or one event in it) that cannot be read or fails verification; names the file and event."""

    def __init__(self, path: str | os.PathLike[str], message: str, *, event: int | None = None) -> None:
        self.path = str(path)
        self.event = event
        where = f"{path}" if event is None else f"{path}: event {event}"
        super().__init__(f"{where}: {message}")


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _concat(rows: list[Any], name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Column `name` of every event (or track table) in `rows`, concatenated as (total, *shape) `dtype`."""
    cols = [np.asarray(getattr(e, name), dtype=dtype).reshape((-1, *shape)) for e in rows]
    return np.concatenate(cols) if cols else np.empty((0, *shape), dtype)


def _track_cols(events: list[Event], where: str) -> dict[str, np.ndarray] | None:
    has = [e.tracks is not None for e in events]
    if not any(has):
        return None
    if not all(has):
        bad = has.index(False)
        raise ValueError(f"{where}: event {bad} has no track table while others do; fill all or none")
    tables = [e.tracks for e in events if e.tracks is not None]
    return {name: _concat(tables, name, dtype, shape) for name, (dtype, shape) in TRACK_COLUMNS.items()}


def _create(group: h5py.File, name: str, data: np.ndarray, compression: str | None) -> None:
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    rows = max(1, min(CHUNK_ROWS, data.shape[0]))
    group.create_dataset(
        name,
        data=data,
        chunks=(rows, *data.shape[1:]),
        compression=compression,
        compression_opts=GZIP_LEVEL if compression == "gzip" else None,
        shuffle=compression == "gzip",  # shuffle helps gzip; with lzf it slowed decoding 3x (measured)
    )


def write_shard(
    path: str | os.PathLike[str],
    events: list[Event],
    *,
    compression: str | None = COMPRESSION,
    where: str = "",
    first_event: int = 0,
) -> dict[str, Any]:
    """Write `events` to `path` atomically; returns the manifest entry {n_events, n_points, sha256}.
    Errors name the shard and event (and `where` + `first_event + i`, the event's index in its source)."""
    path = Path(path)
    for i, event in enumerate(events):
        event.validate(f"{path}: event {i}" + (f" ({where} event {first_event + i})" if where else ""))
    counts = np.array([e.n_points for e in events], dtype=np.int64)
    offsets = offsets_from_counts(counts)
    tracks = _track_cols(events, str(path))
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["n_events"] = len(events)
            f.attrs["n_points"] = int(offsets[-1])
            for name, (dtype, shape) in POINT_COLUMNS.items():
                _create(f, name, _concat(events, name, dtype, shape), compression)
            f.create_dataset("point_offsets", data=offsets)
            if tracks is not None:
                for name, data in tracks.items():
                    _create(f, name, data, compression)
                sizes = np.array([len(e.tracks) for e in events if e.tracks is not None])
                f.create_dataset("track_offsets", data=offsets_from_counts(sizes))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return {"n_events": len(events), "n_points": int(offsets[-1]), "sha256": digest}


@dataclass(frozen=True, kw_only=True)
class ShardTask:
    """One shard to write: events [first_event, first_event + n_events) of `split`, as shard `index`."""

    split: str
    index: int
    first_event: int
    n_events: int

    @property
    def file(self) -> str:
        """Path of the shard relative to the dataset folder."""
        return f"{self.split}/{SHARD_PATTERN.format(index=self.index)}"


def plan_shards(split_events: dict[str, int], shard_events: int) -> list[ShardTask]:
    """Every shard of a dataset whose split sizes are known, in manifest order (split, then index)."""
    if shard_events < 1:
        raise ValueError(f"shard_events must be >= 1, got {shard_events}")
    return [
        ShardTask(split=split, index=i, first_event=lo, n_events=min(shard_events, n - lo))
        for split, n in split_events.items()
        for i, lo in enumerate(range(0, n, shard_events))
    ]


def stats_split_of(splits: Iterable[str]) -> str | None:
    """The split whose spacepoints give the manifest's statistics: train, else the first one."""
    names = list(splits)
    return STATS_SPLIT if STATS_SPLIT in names else next(iter(names), None)


def write_task(
    out: Path, task: ShardTask, events: list[Event], *, compression: str | None,
    acc: StatsAccumulator | None,
) -> dict[str, Any]:  # fmt: skip
    """Write one planned shard; fold its events into `acc` (the stats split's). Returns its manifest entry."""
    if len(events) != task.n_events:
        raise ShardError(out / task.file, f"{len(events)} events for a shard planned with {task.n_events}")
    entry = write_shard(out / task.file, events, compression=compression, where=f"split {task.split!r}",
                        first_event=task.first_event)  # fmt: skip
    if acc is not None:
        for i, event in enumerate(events):
            acc.add(np.asarray(event.points, dtype=np.float32), event=task.first_event + i)
    log.info("wrote %s (%d events)", task.file, len(events))
    return {"file": task.file, **entry}


def begin_dataset(out_dir: str | os.PathLike[str]) -> Path:
    """Create the folder and drop any old manifest: it must not outlive the shards it lists."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    return out


def finish_dataset(
    out: Path, splits: list[str], entries: list[dict[str, Any]], acc: StatsAccumulator,
    provenance: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Remove stale shards, then write the manifest listing `entries` (in split, index order)."""
    by_split: dict[str, Any] = {}
    for split in splits:
        shards = [e for e in entries if e["file"].startswith(f"{split}/")]
        by_split[split] = {"n_events": sum(s["n_events"] for s in shards),
                           "n_points": sum(s["n_points"] for s in shards), "shards": shards}  # fmt: skip
        # shards of an earlier, larger dataset in the same folder would only confuse
        for stale in set((out / split).glob("shard-*.h5")) - {out / s["file"] for s in shards}:
            stale.unlink()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "splits": by_split,
        "stats_split": stats_split_of(splits),
        "stats": acc.finish(),
        "provenance": provenance,
    }
    write_json_atomic(out / MANIFEST_NAME, manifest)
    return manifest


def write_dataset(
    out_dir: str | os.PathLike[str],
    splits: dict[str, Iterable[Event]],
    *,
    shard_events: int,
    provenance: dict[str, Any],
    compression: str | None = COMPRESSION,
) -> dict[str, Any]:
    """Write every split as shards of `shard_events` events, then the manifest (stats from the train split,
    or from the first split when there is no train split). Returns the manifest."""
    if shard_events < 1:
        raise ValueError(f"shard_events must be >= 1, got {shard_events}")
    out = begin_dataset(out_dir)
    stats_split = stats_split_of(splits)
    acc = StatsAccumulator()
    entries: list[dict[str, Any]] = []
    try:
        for split, events in splits.items():
            for index, batch in enumerate(batched(events, shard_events)):
                task = ShardTask(split=split, index=index, first_event=index * shard_events,
                                 n_events=len(batch))  # fmt: skip
                entries.append(write_task(out, task, batch, compression=compression,
                                          acc=acc if split == stats_split else None))  # fmt: skip
    except BaseException:
        for entry in entries:  # a failed write leaves no shard behind (and no manifest)
            (out / entry["file"]).unlink(missing_ok=True)
        raise
    return finish_dataset(out, list(splits), entries, acc, provenance)


def read_manifest(dataset_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check `manifest.json` (schema version, split/shard entries, stats keys)."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(
            f"{path}: no manifest; the dataset is missing or its writer was interrupted "
            "(re-create it with `python -m scaling.data simulate` or `import-tpcpp`)"
        )
    manifest = read_json(path)
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema_version {version!r}, this code reads {SCHEMA_VERSION}; re-create the dataset"
        )
    missing = [k for k in STATS_KEYS if k not in manifest.get("stats", {})]
    if missing or not isinstance(manifest.get("splits"), dict):
        raise ValueError(f"{path}: missing stats keys {missing} or splits; re-create the dataset")
    for split, info in manifest["splits"].items():
        for shard in info.get("shards", []):
            if not {"file", "n_events", "n_points", "sha256"} <= set(shard):
                raise ValueError(f"{path}: split {split!r} has a malformed shard entry {shard}")
    return manifest


class EventBlock:
    """Raw columns of events [lo, hi) of one shard, decoded into `Event`s on demand."""

    def __init__(self, reader: ShardReader, lo: int, cols: dict[str, np.ndarray]) -> None:
        self.reader, self.lo, self.cols = reader, lo, cols
        self.finite = bool(np.isfinite(cols["points"]).all())  # one check per block; per event only if not

    def __len__(self) -> int:
        return int(self.cols["point_offsets"].shape[0] - 1)

    def event(self, k: int) -> Event:
        """The k-th event of the block (shard index lo + k), validated."""
        c = self.cols
        a, b = int(c["point_offsets"][k]), int(c["point_offsets"][k + 1])
        tracks = None
        if "track_offsets" in c:
            ta, tb = int(c["track_offsets"][k]), int(c["track_offsets"][k + 1])
            tracks = TrackTable(**{n: c[n][ta:tb] for n in TRACK_COLUMNS})
        event = Event(
            points=c["points"][a:b],
            track_id=c["track_id"][a:b],
            pid=c["pid"][a:b],
            noise=c["noise"][a:b],
            tracks=tracks,
            event_id=self.lo + k,
        )
        points = event.points
        if not self.finite and not np.isfinite(points).all():
            bad = int(np.flatnonzero(~np.isfinite(points).all(axis=1))[0])
            raise ShardError(self.reader.path, f"NaN/inf coordinate at spacepoint {bad}", event=self.lo + k)
        return event


class ShardReader:
    """One shard file, opened lazily on first access (so it can be created before DataLoader workers fork)."""

    def __init__(self, path: str | os.PathLike[str], *, sha256: str | None = None) -> None:
        self.path = Path(path)
        self.sha256 = sha256
        self._file: h5py.File | None = None
        self._offsets: np.ndarray | None = None
        self._track_offsets: np.ndarray | None = None

    def _open(self) -> h5py.File:
        if self._file is not None:
            return self._file
        if not self.path.is_file():
            raise ShardError(self.path, "shard file is missing; re-create the dataset")
        try:
            f = h5py.File(self.path, "r")
        except OSError as err:
            raise ShardError(
                self.path, f"not a readable HDF5 shard ({err}); it is truncated or corrupt, re-create it"
            ) from None
        version = f.attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            f.close()
            raise ShardError(
                self.path, f"schema_version {version!r}, expected {SCHEMA_VERSION}; re-create the dataset"
            )
        try:
            self._offsets = f["point_offsets"][...]
            self._track_offsets = f["track_offsets"][...] if "track_offsets" in f else None
        except (KeyError, OSError) as err:
            f.close()
            raise ShardError(self.path, f"cannot read offsets ({err}); re-create the shard") from None
        self._file = f
        self._check_offsets(self._offsets, "point_offsets", f["points"].shape[0])
        if self._track_offsets is not None:
            if self._track_offsets.shape != self._offsets.shape:
                self.close()
                raise ShardError(self.path, "track_offsets and point_offsets differ in length; re-create it")
            self._check_offsets(self._track_offsets, "track_offsets", f["pdg"].shape[0])
        return f

    def _check_offsets(self, offsets: np.ndarray, name: str, n_rows: int) -> None:
        steps = np.diff(offsets)
        if offsets.size == 0 or offsets[0] != 0 or (steps < 0).any() or offsets[-1] != n_rows:
            bad = int(np.flatnonzero(steps < 0)[0]) if (steps < 0).any() else None
            self.close()
            raise ShardError(
                self.path,
                f"{name} inconsistent (must rise from 0 to {n_rows} column rows, ends at "
                f"{offsets[-1] if offsets.size else 'nothing'}); re-create the shard",
                event=bad,
            )

    def __len__(self) -> int:
        self._open()
        assert self._offsets is not None
        return int(self._offsets.shape[0] - 1)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None

    def __getstate__(self) -> dict[str, Any]:
        # Open HDF5 handles do not survive pickling/forking: each worker re-opens lazily.
        return {"path": self.path, "sha256": self.sha256, "_file": None, "_offsets": None,
                "_track_offsets": None}  # fmt: skip

    def read_block(self, lo: int, hi: int) -> EventBlock:
        """Events [lo, hi) in one bulk read per column."""
        f = self._open()
        n = len(self)
        if not 0 <= lo <= hi <= n:
            raise IndexError(f"{self.path}: events [{lo}, {hi}) outside 0..{n}")
        assert self._offsets is not None
        pa, pb = int(self._offsets[lo]), int(self._offsets[hi])
        cols: dict[str, np.ndarray] = {"point_offsets": self._offsets[lo : hi + 1] - pa}
        try:
            for name in POINT_COLUMNS:
                cols[name] = f[name][pa:pb]
            if self._track_offsets is not None:
                ta, tb = int(self._track_offsets[lo]), int(self._track_offsets[hi])
                cols["track_offsets"] = self._track_offsets[lo : hi + 1] - ta
                for name in TRACK_COLUMNS:
                    cols[name] = f[name][ta:tb]
        except (OSError, KeyError) as err:
            raise ShardError(
                self.path, f"cannot read events {lo}..{hi - 1} ({err}); the shard is corrupt, re-create it"
            ) from None
        return EventBlock(self, lo, cols)

    def read_event(self, i: int) -> Event:
        return self.read_block(i, i + 1).event(0)

    def read_events(self, lo: int, hi: int) -> list[Event]:
        block = self.read_block(lo, hi)
        return [block.event(k) for k in range(len(block))]

    def verify(self, *, block_events: int = 4096) -> dict[str, int]:
        """Check checksum (when known), offsets, column lengths, NaN/inf and PID range; raise `ShardError`."""
        if self.sha256 is not None:
            if not self.path.is_file():
                raise ShardError(self.path, "shard file is missing; re-create the dataset")
            actual = sha256_file(self.path)
            if actual != self.sha256:
                raise ShardError(
                    self.path, f"sha256 {actual[:12]}... differs from the manifest's {self.sha256[:12]}...; "
                    "the file changed after writing, re-create it",
                )  # fmt: skip
        n = len(self)
        f = self._open()
        for name in POINT_COLUMNS:
            if f[name].shape[0] != f["points"].shape[0]:
                raise ShardError(self.path, f"column {name} has {f[name].shape[0]} rows, points has "
                                 f"{f['points'].shape[0]}; re-create the shard")  # fmt: skip
        n_points = 0
        for lo in range(0, n, block_events):
            block = self.read_block(lo, min(n, lo + block_events))
            for k in range(len(block)):
                event = block.event(k)
                if not pid_in_range(event.pid):
                    raise ShardError(self.path, PID_RANGE_ERROR, event=lo + k)
                n_points += event.n_points
        return {"n_events": n, "n_points": n_points}
