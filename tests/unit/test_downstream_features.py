"""Feature cache (real HDF5), permutation handling and nested label budgets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.downstream.features import (
    load_or_extract,
    read_cache,
    truth_kinematics,
    unpermute,
)
from scaling.data.schema import Event, TrackTable


class CoordinateSource:
    """A real (if trivial) feature source: x, y, z scaled, plus a counter of how often it ran."""

    key = "coords-v1"
    width = 3

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, events: list[Event]) -> list[np.ndarray]:
        self.calls += 1
        return [ev.points[:, 1:] / 100.0 for ev in events]


def _event(i: int, rng: np.random.Generator, with_tracks: bool = True) -> Event:
    n = int(rng.integers(5, 15))
    tid = rng.integers(-1, 3, n)
    tracks = None
    if with_tracks:
        mom = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 2.0], [0.3, 0.4, -1.0]], dtype=np.float32)
        tracks = TrackTable(
            momentum=mom,
            vertex=np.zeros((3, 3), np.float32),
            pdg=np.array([211, 321, 11], np.int32),
            charge=np.ones(3, np.int8),
        )
    return Event(
        points=rng.normal(size=(n, 4)).astype(np.float32),
        track_id=tid,
        pid=rng.integers(0, 5, n).astype(np.int8),
        noise=(tid < 0).astype(np.uint8),
        tracks=tracks,
        event_id=i,
    )


def test_unpermute_inverts_serialisation_order() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(10, 3))
    perm = rng.permutation(10)
    sorted_values = values[perm] * 2.0  # a per-point function applied in serialised order
    np.testing.assert_array_equal(unpermute(sorted_values, perm), values * 2.0)


def test_truth_kinematics_per_point() -> None:
    ev = _event(0, np.random.default_rng(1))
    pt, eta = truth_kinematics(ev)
    i = int(np.flatnonzero(ev.track_id == 1)[0])
    assert pt[i] == pytest.approx(2.0) and eta[i] == pytest.approx(np.arcsinh(1.0))
    assert np.isnan(pt[ev.track_id < 0]).all()
    ev.tracks = None
    assert truth_kinematics(ev) is None


def test_cache_round_trip_prefix_reuse(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    events = [_event(i, rng) for i in range(6)]
    src = CoordinateSource()
    full = load_or_extract(src, iter(events), split="test", n_events=6, cache_dir=tmp_path)
    calls = src.calls
    small = load_or_extract(src, iter(events), split="test", n_events=3, cache_dir=tmp_path)
    assert src.calls == calls  # served from the cache
    assert len(small) == 3 and small.event_ids.tolist() == [0, 1, 2]
    for a, b, ev in zip(small.features, full.features, events, strict=False):
        np.testing.assert_allclose(a, b)
        np.testing.assert_allclose(a, ev.points[:, 1:] / 100.0)
    np.testing.assert_array_equal(small.track_id[2], events[2].track_id)
    assert small.pt is not None and small.pt[0].shape == events[0].track_id.shape
    again = read_cache(tmp_path / "coords-v1" / "test.h5")
    assert len(again) == 6 and np.array_equal(again.noise[5], events[5].noise)
    # A larger request than cached recomputes (and the split's own size is checked by the caller).
    load_or_extract(src, iter(events), split="test", n_events=7, cache_dir=tmp_path)
    assert src.calls > calls


def test_events_without_truth_table_store_no_kinematics(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    events = [_event(i, rng, with_tracks=False) for i in range(2)]
    data = load_or_extract(CoordinateSource(), events, split="val", n_events=2, cache_dir=tmp_path)
    assert data.pt is None and read_cache(tmp_path / "coords-v1" / "val.h5").pt is None
