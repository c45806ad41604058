"""The public TPCpp-10M NumPy layout: import into sharded HDF5, and export events in that layout.

Layout (one folder SRC):

    labeled/{train,validation,test}/spacepoints.npz   `data` (N, 4) float32 = E, x, y, z [cm]; `size`
                                                      = points per event
    labeled/<split>/track_ids.npz, pid_labels.npz,    key `data`, one value per spacepoint
                    noise_tags.npz
    labeled/<split>/spacepoints_000.npz, ...          the same, sharded (the train split)
    unlabeled/**/*.npz                                pretraining files: `data` and `size` only

Splits map to `train`, `val`, `test`; unlabelled files become split `pretrain` (track_id -1, pid 0, noise 0:
the files carry no truth). Import streams one source file at a time; every file and key is checked before the
first shard is written, so a missing file or key stops the import with nothing written.

    >>> import_tpcpp("/data/TPCpp-10M", "data/tpcpp", shard_events=1024)
    >>> export_tpcpp("data/fake-tpcpp", {"train": events}, file_events=1000)
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scaling.data.schema import (
    PRETRAIN_SPLIT,
    TEST_SPLIT,
    TRAIN_SPLIT,
    VAL_SPLIT,
    Event,
    offsets_from_counts,
)
from scaling.data.shards import write_dataset

log = logging.getLogger(__name__)

SPLITS = {"train": TRAIN_SPLIT, "validation": VAL_SPLIT, "test": TEST_SPLIT}  # TPCpp-10M folder -> split
LABELS = {"track_id": "track_ids", "pid": "pid_labels", "noise": "noise_tags"}  # column -> file stem
UNLABELED_DIRS = ("unlabeled", "unlabelled")
FileGroup = dict[str, Path]  # "spacepoints" and, when labelled, the LABELS stems -> file
Loaded = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]  # points, offsets, label columns


def _open_npz(path: Path, keys: tuple[str, ...]) -> Any:
    if not path.is_file():
        raise ValueError(f"{path}: missing TPCpp-10M file; restore it or remove its split from the source")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head != b"PK\x03\x04":  # every .npz is a zip archive; numpy would speak of pickled data instead
        kind = "an empty file" if not head else f"a file starting {head!r}, not a zip archive"
        raise ValueError(f"{path}: not an .npz file ({kind}); re-download it")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err}); re-download it") from None
    missing = [k for k in keys if k not in npz.files]
    if missing:
        npz.close()
        raise ValueError(
            f"{path}: no key {missing[0]!r} (has {', '.join(npz.files) or 'none'}); re-download it"
        )
    return npz


def _groups(folder: Path, labelled: bool) -> list[FileGroup]:
    """One group per spacepoints file (single `spacepoints.npz` or `spacepoints_NNN.npz` shards)."""
    single = folder / "spacepoints.npz"
    sharded = sorted(folder.glob("spacepoints_[0-9]*.npz"))
    files = [single] if single.is_file() else sharded
    if not files:
        raise ValueError(f"{folder}: no spacepoints.npz or spacepoints_NNN.npz; check the TPCpp-10M path")
    groups = []
    for sp in files:
        suffix = sp.stem[len("spacepoints") :]
        group: FileGroup = {"spacepoints": sp}
        if labelled:
            group.update({stem: folder / f"{stem}{suffix}.npz" for stem in LABELS.values()})
        groups.append(group)
    return groups


def discover(src: str | os.PathLike[str]) -> dict[str, list[FileGroup]]:
    """Split name -> file groups found under `src`; checks every file and key without loading arrays."""
    root = Path(src)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder; pass the TPCpp-10M root (holding labeled/)")
    found: dict[str, list[FileGroup]] = {}
    for folder, split in SPLITS.items():
        if (root / "labeled" / folder).is_dir():
            found[split] = _groups(root / "labeled" / folder, labelled=True)
    for name in UNLABELED_DIRS:
        files = sorted((root / name).rglob("*.npz")) if (root / name).is_dir() else []
        if files:
            found[PRETRAIN_SPLIT] = [{"spacepoints": f} for f in files]
    if not found:
        raise ValueError(f"{root}: no labeled/{{train,validation,test}}/ or unlabeled/ folder; wrong path?")
    for groups in found.values():
        for group in groups:
            for stem, path in group.items():
                _open_npz(path, ("data", "size") if stem == "spacepoints" else ("data",)).close()
    return found


def load_group(group: FileGroup) -> Loaded:
    """(points (N, 4), offsets (events + 1), per-point label columns) of a spacepoints file and its labels."""
    sp = group["spacepoints"]
    with _open_npz(sp, ("data", "size")) as npz:
        data, size = np.asarray(npz["data"], np.float32), np.asarray(npz["size"], np.int64).reshape(-1)
    if data.ndim != 2 or data.shape[1] != 4 or int(size.sum()) != data.shape[0] or (size < 0).any():
        raise ValueError(
            f"{sp}: `data` {data.shape} and `size` (sum {int(size.sum())}) disagree; expected data (N, 4) "
            "with N = sum(size); re-download the file"
        )
    n = data.shape[0]
    cols: dict[str, np.ndarray] = {
        "track_id": np.full(n, -1, np.int64),
        "pid": np.zeros(n, np.int8),
        "noise": np.zeros(n, np.uint8),
    }
    for column, stem in LABELS.items():
        if stem in group:
            with _open_npz(group[stem], ("data",)) as npz:
                values = np.asarray(npz["data"]).reshape(-1)
            if values.shape[0] != n:
                raise ValueError(f"{group[stem]}: {values.shape[0]} values for {n} spacepoints in {sp.name}")
            cols[column] = values.astype(cols[column].dtype)
    return data, offsets_from_counts(size), cols


def iter_group(
    group: FileGroup, *, skip_bad_events: bool = False, skipped: dict[str, Any] | None = None,
    lo: int = 0, hi: int | None = None, load: Callable[[FileGroup], Loaded] = load_group,
) -> Iterator[Event]:  # fmt: skip
    """Events [lo, hi) of one spacepoints file (and its label files); one file's arrays in memory at once."""
    sp = group["spacepoints"]
    data, offsets, cols = load(group)
    for i in range(lo, offsets.size - 1 if hi is None else hi):
        a, b = int(offsets[i]), int(offsets[i + 1])
        event = Event(points=data[a:b], **{k: v[a:b] for k, v in cols.items()}, meta={"source": str(sp)})
        try:
            event.validate(f"{sp}: event {i}")
        except ValueError as err:
            if not skip_bad_events:
                raise
            if skipped is not None:
                skipped["skipped_events"] += 1
            log.warning("skipped bad source event: %s", err)
            continue
        yield event


def count_events(groups: list[FileGroup]) -> list[int]:
    """Events per file group, read from the `size` arrays alone (no spacepoints loaded)."""
    counts = []
    for group in groups:
        with _open_npz(group["spacepoints"], ("size",)) as npz:
            counts.append(int(np.asarray(npz["size"]).size))
    return counts


class RangeReader:
    """Events [lo, hi) of one split, read file by file; the last file read stays loaded, so consecutive
    shards cut from one large source file load it once."""

    def __init__(self, groups: list[FileGroup]) -> None:
        self.groups = groups
        self.counts = count_events(groups)
        self._last: tuple[Path, Loaded] | None = None

    def _load(self, group: FileGroup) -> Loaded:
        if self._last is None or self._last[0] != group["spacepoints"]:
            self._last = None  # free the previous file's arrays before loading the next
            self._last = (group["spacepoints"], load_group(group))
        return self._last[1]

    def events(self, lo: int, hi: int) -> Iterator[Event]:
        starts = offsets_from_counts(self.counts)
        for group, first, last in zip(self.groups, starts[:-1], starts[1:], strict=True):
            if last > lo and first < hi:
                a, b = max(lo, int(first)) - int(first), min(hi, int(last)) - int(first)
                yield from iter_group(group, lo=a, hi=b, load=self._load)


def tpcpp_provenance(src: str | os.PathLike[str], found: dict[str, list[FileGroup]]) -> dict[str, Any]:
    """The manifest's provenance block of an import (skipped_events counted while importing)."""
    return {
        "source": "tpcpp",
        "root": str(Path(src).resolve()),
        "files": {s: [str(g["spacepoints"].relative_to(src)) for g in gs] for s, gs in found.items()},
        "labelled": {s: s != PRETRAIN_SPLIT for s in found},
        "skipped_events": 0,
    }


def import_tpcpp(
    src: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, shard_events: int = 1024,
    skip_bad_events: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Convert TPCpp-10M files under `src` into a sharded dataset at `out_dir`; returns the manifest."""
    found = discover(src)

    def events(groups: list[FileGroup]) -> Iterator[Event]:
        for group in groups:
            log.info("importing %s", group["spacepoints"])
            yield from iter_group(group, skip_bad_events=skip_bad_events, skipped=provenance)

    # The generators count skipped events into provenance; write_dataset records it after the last shard.
    provenance = tpcpp_provenance(src, found)
    order = [s for s in (TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT, PRETRAIN_SPLIT) if s in found]
    manifest = write_dataset(
        out_dir, {s: events(found[s]) for s in order}, shard_events=shard_events, provenance=provenance
    )
    if provenance["skipped_events"]:
        log.warning("skipped %d bad source events (see warnings above)", provenance["skipped_events"])
    return manifest


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def _write_group(folder: Path, suffix: str, events: list[Event], labelled: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = np.concatenate([np.asarray(e.points, np.float32) for e in events])
    size = np.array([e.n_points for e in events], dtype=np.int64)
    _write_npz(folder / f"spacepoints{suffix}.npz", {"data": data, "size": size})
    if labelled:
        for column, stem in LABELS.items():
            values = np.concatenate([np.asarray(getattr(e, column)) for e in events])
            _write_npz(folder / f"{stem}{suffix}.npz", {"data": values})


def export_tpcpp(
    out_dir: str | os.PathLike[str], splits: dict[str, Iterable[Event]], *, file_events: int = 10_000
) -> None:
    """Write events in the TPCpp-10M layout, `file_events` per file (`_NNN` names when a split needs more
    than one file); splits other than train/val/test become unlabelled files."""
    names = {v: k for k, v in SPLITS.items()}
    for split, events in splits.items():
        labelled = split in names
        folder = Path(out_dir) / ("labeled/" + names[split] if labelled else f"{UNLABELED_DIRS[0]}/{split}")
        batch: list[Event] = []
        pending: list[Event] | None = None
        index = 0
        for event in events:
            batch.append(event)
            if len(batch) == file_events:
                if pending is not None:
                    _write_group(folder, f"_{index:03d}", pending, labelled)
                    index += 1
                pending, batch = batch, []
        if pending is not None and batch:
            _write_group(folder, f"_{index:03d}", pending, labelled)
            pending, index = batch, index + 1
        elif batch:
            pending = batch
        if pending is not None:
            _write_group(folder, f"_{index:03d}" if index else "" if labelled else "_000", pending, labelled)
