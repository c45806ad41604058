"""The event schema rejects inconsistent columns and non-finite coordinates, naming the event."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.data.schema import N_PID_CLASSES, PID_NAMES, STATS_KEYS, Event, offsets_from_counts, pid_in_range


def make_event(n: int = 5) -> Event:
    rng = np.random.default_rng(0)
    return Event(
        points=rng.normal(size=(n, 4)).astype(np.float32),
        track_id=np.arange(n, dtype=np.int64),
        pid=np.ones(n, dtype=np.int8),
        noise=np.zeros(n, dtype=np.uint8),
    )


def test_valid_event_passes_and_counts_points() -> None:
    event = make_event()
    event.validate()
    assert event.n_points == 5
    assert len(PID_NAMES) == N_PID_CLASSES == 5
    assert "eta_edges" in STATS_KEYS


def test_nan_coordinate_is_named() -> None:
    event = make_event()
    event.points[3, 2] = np.nan
    with pytest.raises(ValueError, match="event 17: non-finite coordinate at spacepoint 3"):
        event.validate("event 17")


def test_column_length_mismatch_and_bad_pid() -> None:
    event = make_event()
    event.noise = event.noise[:-1]
    with pytest.raises(ValueError, match="column noise has shape"):
        event.validate()
    event = make_event()
    event.pid[0] = 7
    with pytest.raises(ValueError, match="pid outside"):
        event.validate()


def test_offsets_from_counts_bound_each_ragged_row() -> None:
    counts = np.array([3, 0, 2, 4])
    offsets = offsets_from_counts(counts)
    assert offsets.dtype == np.int64
    assert offsets.tolist() == [0, 3, 3, 5, 9]
    rows = np.arange(9)
    assert [rows[offsets[e] : offsets[e + 1]].size for e in range(counts.size)] == counts.tolist()
    assert offsets_from_counts([]).tolist() == [0] and offsets_from_counts([]).dtype == np.int64


@pytest.mark.parametrize(
    ("pid", "ok"),
    [([], True), ([0, 4, 2], True), ([0, N_PID_CLASSES], False), ([-1, 1], False)],
)
def test_pid_in_range(pid: list[int], ok: bool) -> None:
    assert pid_in_range(np.array(pid, dtype=np.int8)) is ok
