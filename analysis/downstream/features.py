"""Per-point features for the adapters, from a frozen backbone or the raw inputs, cached per (source, split).

A *source* turns one event into features [n, d] in the event's ORIGINAL point order, so that the labels stored
with the event (track_id, pid, noise) index them directly:

    backbone: normalise -> serialise (perm) -> backbone on points[perm] -> scatter back: out[perm] = h
    raw:      normalise only (the AdapterOnly baseline learns a linear stem on these 4 columns)

The cache is one HDF5 file per (source key, split): ragged columns concatenated over events with `offsets`,
the first `n_events` events of the split in storage order (so every label budget is a prefix: budgets are
nested). A cache with at least the requested events is reused; the key of a backbone is a hash of the
resolved checkpoint folder, its step and its files' sizes and modification times, so a retrained checkpoint
is never confused with the old one.

    >>> src = RawSource(stats)                       # or BackboneSource.load(run_dir, step)
    >>> data = load_or_extract(src, events, split="test", n_events=500, cache_dir=Path("cache"))
    >>> data.features[3], data.track_id[3]           # event 3: [n, d] float32 and (n,) labels
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from scaling.data.schema import Event
from scaling.iterables import batched

log = logging.getLogger(__name__)
CACHE_VERSION = 1


class FeatureSource(Protocol):
    key: str
    width: int

    def extract(self, events: list[Event]) -> list[np.ndarray]: ...


@dataclass
class LabelledSplit:
    """Features and labels of a prefix of a split, per event in original point order."""

    features: list[np.ndarray]  # each [n_i, d] float32
    track_id: list[np.ndarray]
    pid: list[np.ndarray]
    noise: list[np.ndarray]
    points: list[np.ndarray]  # each [n_i, 4] E, x, y, z (event display)
    pt: list[np.ndarray] | None  # truth pT of each point's particle (GeV), where known
    eta: list[np.ndarray] | None
    event_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    def head(self, n: int) -> LabelledSplit:
        """The first `n` events (a nested label budget)."""
        cut = lambda xs: None if xs is None else xs[:n]  # noqa: E731
        return LabelledSplit(
            self.features[:n], self.track_id[:n], self.pid[:n], self.noise[:n], self.points[:n],
            cut(self.pt), cut(self.eta), self.event_ids[:n],
        )  # fmt: skip


def unpermute(sorted_values: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Inverse of `values[perm]`: rows of the serialised sequence back to original point order."""
    out = np.empty_like(sorted_values)
    out[perm] = sorted_values
    return out


def truth_kinematics(event: Event) -> tuple[np.ndarray, np.ndarray] | None:
    """(pT, eta) of each point's particle from the event's track table, or None without one."""
    if event.tracks is None or len(event.tracks) == 0:
        return None
    p = np.asarray(event.tracks.momentum, dtype=np.float64)  # (t, 3)
    pt_t = np.hypot(p[:, 0], p[:, 1])
    eta_t = np.arcsinh(p[:, 2] / np.maximum(pt_t, 1e-12))
    tid = np.asarray(event.track_id)
    ok = (tid >= 0) & (tid < len(pt_t))
    pt = np.where(ok, pt_t[np.clip(tid, 0, len(pt_t) - 1)], np.nan)
    eta = np.where(ok, eta_t[np.clip(tid, 0, len(pt_t) - 1)], np.nan)
    return pt.astype(np.float32), eta.astype(np.float32)


def _cache_path(cache_dir: Path, key: str, split: str) -> Path:
    return cache_dir / key / f"{split}.h5"


def _concat(xs: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)


def write_cache(path: Path, data: LabelledSplit, source_key: str) -> None:
    """Write a LabelledSplit as ragged HDF5 (beside, then rename, so a killed job leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".h5.{os.getpid()}.tmp")  # concurrent runs on one backbone may race here
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in data.track_id])]).astype(np.int64)
    with h5py.File(tmp, "w") as f:
        f.attrs.update(cache_version=CACHE_VERSION, source_key=source_key, n_events=len(data))
        width = data.features[0].shape[1] if len(data) else 0
        f.attrs["width"] = width
        feats = np.concatenate(data.features) if len(data) else np.zeros((0, width))
        f["features"] = feats.astype(np.float32)
        for name, dtype in (("track_id", np.int64), ("pid", np.int8), ("noise", np.uint8)):
            f[name] = _concat(getattr(data, name), dtype)
        f["points"] = np.concatenate(data.points).astype(np.float32) if len(data) else np.zeros((0, 4))
        if data.pt is not None and data.eta is not None:
            f["pt"], f["eta"] = _concat(data.pt, np.float32), _concat(data.eta, np.float32)
        f["offsets"] = offsets
        f["event_ids"] = np.asarray(data.event_ids, dtype=np.int64)
    tmp.replace(path)


def read_cache(path: Path, n_events: int | None = None) -> LabelledSplit:
    """Read the first `n_events` events (all by default) of a cache file."""
    with h5py.File(path, "r") as f:
        if int(f.attrs.get("cache_version", -1)) != CACHE_VERSION:
            raise ValueError(f"{path}: feature cache version differs from {CACHE_VERSION}; delete it")
        n = int(f.attrs["n_events"]) if n_events is None else n_events
        off = f["offsets"][: n + 1]
        end = int(off[-1])
        cols = {k: f[k][:end] for k in ("features", "track_id", "pid", "noise", "points")}
        has_truth = "pt" in f
        if has_truth:
            cols["pt"], cols["eta"] = f["pt"][:end], f["eta"][:end]
        event_ids = f["event_ids"][:n]

    def split(a: np.ndarray) -> list[np.ndarray]:
        return [a[off[i] : off[i + 1]] for i in range(n)]

    return LabelledSplit(
        split(cols["features"]), split(cols["track_id"]), split(cols["pid"]), split(cols["noise"]),
        split(cols["points"]), split(cols["pt"]) if has_truth else None,
        split(cols["eta"]) if has_truth else None, event_ids,
    )  # fmt: skip


def cached_events(path: Path) -> int:
    """Events held by a cache file (0 when absent)."""
    if not path.is_file():
        return 0
    with h5py.File(path, "r") as f:
        return int(f.attrs.get("n_events", 0))


def extract_split(source: FeatureSource, events: Iterable[Event], batch_events: int = 8) -> LabelledSplit:
    """Run `source` over `events` and collect features with labels (original point order)."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("f", "t", "p", "n", "x", "pt", "eta")}
    ids: list[int] = []
    all_truth = True
    for batch in batched(events, batch_events):
        for ev, feats in zip(batch, source.extract(batch), strict=True):
            out["f"].append(feats.astype(np.float32))
            out["t"].append(ev.track_id)
            out["p"].append(ev.pid)
            out["n"].append(ev.noise)
            out["x"].append(ev.points)
            ids.append(ev.event_id)
            kin = truth_kinematics(ev)
            all_truth &= kin is not None
            if kin is not None:
                out["pt"].append(kin[0])
                out["eta"].append(kin[1])
    return LabelledSplit(
        out["f"], out["t"], out["p"], out["n"], out["x"],
        out["pt"] if all_truth and ids else None, out["eta"] if all_truth and ids else None,
        np.asarray(ids, dtype=np.int64),
    )  # fmt: skip


def load_or_extract(
    source: FeatureSource,
    events: Iterable[Event],
    *,
    split: str,
    n_events: int,
    cache_dir: Path | None,
) -> LabelledSplit:
    """Features of the first `n_events` events of `split`, from the cache when it holds enough of them.

    `events` is iterated (lazily) only on a cache miss; it must yield the split in storage order.
    """
    if cache_dir is None:
        return extract_split(source, _take(events, n_events))
    path = _cache_path(Path(cache_dir), source.key, split)
    if cached_events(path) >= n_events:
        log.info("feature cache hit: %s (%d events)", path, n_events)
        return read_cache(path, n_events)
    data = extract_split(source, _take(events, n_events))
    write_cache(path, data, source.key)
    log.info("feature cache written: %s (%d events)", path, len(data))
    return data


def _take(events: Iterable[Event], n: int) -> Iterator[Event]:
    for i, ev in enumerate(events):
        if i >= n:
            return
        yield ev


def hash_key(*parts: object) -> str:
    """Short stable hash of the parts (cache folder name)."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]
