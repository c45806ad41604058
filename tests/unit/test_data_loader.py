"""The streaming loader: partition across 2 ranks x 2 real DataLoader workers, resume, nested fractions."""

from __future__ import annotations

import itertools
import math
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from torch.utils.data import DataLoader

from scaling.data.loader import PAPER_FRACTIONS, EventStream, nested_subset
from scaling.data.schema import Event
from scaling.data.shards import ShardError, write_dataset


def small_events(n: int, seed: int = 0) -> list[Event]:
    """Tiny events whose first energy value encodes their index (so content can be checked)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 6))
        points = np.column_stack([np.full(k, i), rng.uniform(31, 70, (k, 2)), rng.uniform(-50, 50, k)])
        out.append(
            Event(
                points=points.astype(np.float32),
                track_id=np.zeros(k, np.int64),
                pid=np.ones(k, np.int8),
                noise=np.zeros(k, np.uint8),
            )
        )
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    write_dataset(root, {"train": small_events(203)}, shard_events=17, provenance={})
    return root


def ids(events) -> list[int]:
    out = []
    for event in events:
        assert int(event.points[0, 0]) == event.event_id  # content belongs to the id it claims
        out.append(event.event_id)
    return out


def loader(stream: EventStream, workers: int = 2) -> DataLoader:
    return DataLoader(stream, batch_size=None, num_workers=workers, collate_fn=lambda e: e)


def test_nested_fractions_are_subsets_and_seed_independent() -> None:
    previous: set[int] = set()
    for fraction in PAPER_FRACTIONS:
        sub = nested_subset(1000, fraction)
        assert sub.size == math.ceil(fraction * 1000) and (np.diff(sub) > 0).all()
        assert previous <= set(sub.tolist())
        previous = set(sub.tolist())
    with pytest.raises(ValueError, match="fraction"):
        nested_subset(10, 0.0)


def test_two_ranks_two_workers_partition_the_epoch(dataset: Path) -> None:
    seen = []
    for rank in range(2):
        stream = EventStream(dataset, "train", seed=3, rank=rank, world_size=2, shuffle_buffer=8)
        got = ids(loader(stream))
        assert got == stream.sequence(0).tolist()  # workers interleave back to the rank's own order
        assert got == ids(EventStream(dataset, "train", seed=3, rank=rank, world_size=2, shuffle_buffer=8))
        seen += got
    assert sorted(seen) == list(range(203))  # nothing read twice, nothing skipped
    assert seen != sorted(seen)  # shuffled


def test_order_depends_on_seed_and_epoch_not_fraction_membership(dataset: Path) -> None:
    a = EventStream(dataset, "train", seed=1).sequence(0)
    assert (a != EventStream(dataset, "train", seed=2).sequence(0)).any()
    assert (a != EventStream(dataset, "train", seed=1).sequence(1)).any()
    assert np.array_equal(a, EventStream(dataset, "train", seed=1).sequence(0))
    plain = EventStream(dataset, "train", shuffle=False)
    assert ids(plain) == list(range(203))
    small = {
        f: set(ids(EventStream(dataset, "train", seed=s, fraction=f))) for f, s in ((0.116, 5), (0.2, 9))
    }
    assert small[0.116] < small[0.2] and len(small[0.116]) == math.ceil(0.116 * 203)


@pytest.mark.parametrize("stop", [37, 101 + 13])
def test_resume_continues_the_same_sequence_across_epochs(dataset: Path, stop: int) -> None:
    for rank in range(2):
        kwargs = dict(seed=7, rank=rank, world_size=2, shuffle_buffer=16, epochs=None)
        full = EventStream(dataset, "train", **kwargs)
        reference = ids(itertools.islice(loader(full), stop + 40))
        first = EventStream(dataset, "train", **kwargs)
        for event in itertools.islice(loader(first), stop):
            first.update_cursor(event)
        state = first.state_dict()
        assert state["epoch"] == stop // first.n_events
        resumed = EventStream(dataset, "train", **kwargs)
        resumed.load_state_dict(state)
        assert ids(itertools.islice(loader(resumed), 40)) == reference[stop:]
    with pytest.raises(ValueError, match="world_size"):
        EventStream(dataset, "train", seed=7, world_size=3, rank=1).load_state_dict(state)


def test_in_process_iteration_moves_cursor(dataset: Path) -> None:
    stream = EventStream(dataset, "train", seed=1, fraction=0.2)
    assert not stream._readers  # nothing opened before iteration
    head = ids(itertools.islice(stream, 10))
    assert stream._readers and not pickle.loads(pickle.dumps(stream))._readers  # workers reopen lazily
    assert stream.state_dict()["consumed"] == 10
    rest = ids(stream)
    assert head + rest == stream.sequence(0).tolist()
    assert stream.state_dict()["epoch"] == 1 and stream.state_dict()["consumed"] == 0


def test_bad_event_raises_or_is_counted(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": small_events(30)}, shard_events=10, provenance={})
    path = tmp_path / "train/shard-00001.h5"
    with h5py.File(path, "a") as f:
        points, offsets = f["points"][...], f["point_offsets"][...]
        points[offsets[4], 1] = np.nan
        del f["points"]
        f.create_dataset("points", data=points)
    with pytest.raises(ShardError, match=r"shard-00001\.h5: event 4: NaN/inf"):
        list(EventStream(tmp_path, "train", shuffle=False))
    stream = EventStream(tmp_path, "train", shuffle=False, skip_bad_events=True)
    got = ids(stream)
    assert got == [i for i in range(30) if i != 14]
    assert stream.n_skipped == 1 and stream.skipped == [(str(path), 4)]
