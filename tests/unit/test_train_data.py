"""Dataset creation for a run and resumable packed micro-batches, on a small simulated dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scaling.config import ConfigError
from scaling.data.loader import EventStream
from scaling.data.shards import read_manifest
from scaling.inputs.coordinates import Normalizer
from scaling.objectives import ObjectiveConfig, build_objective
from scaling.train.batches import BatchSource, fit_difficulty, validation_batches
from scaling.train.config import DataConfig, SimulateConfig
from scaling.train.data_setup import ensure_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("d") / "data"
    sim = SimulateConfig(enabled=True, train_events=12, val_events=6, shard_events=5, profile="small")
    ensure_dataset(DataConfig(dataset_dir=str(root), simulate_if_missing=sim))
    return root


def _source(root: Path, rank: int = 0, world: int = 1) -> BatchSource:
    objective = build_objective(ObjectiveConfig(k=4))
    stream = EventStream(root, "train", seed=3, rank=rank, world_size=world, shuffle_buffer=4, epochs=None)
    norm = Normalizer.from_stats(read_manifest(root)["stats"])
    return BatchSource(stream, normalizer=norm, objective=objective, serialization="random", seed=3,
                       micro_batch_events=2)  # fmt: skip


def test_simulated_when_missing_and_error_when_not_allowed(dataset: Path, tmp_path: Path) -> None:
    manifest = read_manifest(dataset)
    assert manifest["splits"]["train"]["n_events"] == 12 and manifest["splits"]["val"]["n_events"] == 6
    assert not list(dataset.parent.glob(".data.tmp-*"))  # written aside, renamed into place
    with pytest.raises(ConfigError, match="data.dataset_dir=.*simulate_if_missing.enabled=true"):
        ensure_dataset(DataConfig(dataset_dir=str(tmp_path / "none")))


def test_batches_resume_exactly_from_the_cursor_across_epochs(dataset: Path) -> None:
    first = _source(dataset)
    for _ in range(5):  # 10 of 12 events: the next batches cross into the second epoch
        first.next_batch()
    state = first.state_dict()
    want = [first.next_batch() for _ in range(4)]
    second = _source(dataset)
    second.load_state_dict(state)
    got = [second.next_batch() for _ in range(4)]
    for a, b in zip(got, want, strict=True):
        assert a.event_ids == b.event_ids and a.n_events == 2
        assert torch.equal(a.features, b.features)  # same random serialisation order too
        assert torch.equal(a.seq_idx, b.seq_idx)


def test_validation_set_is_fixed_and_split_across_ranks(dataset: Path) -> None:
    one = validation_batches(str(dataset), "val", n_events=4, rank=0, world_size=1, source=_source(dataset))
    ids = [i for b in one for i in b.event_ids]
    assert len(ids) == 4
    parts = [validation_batches(str(dataset), "val", n_events=4, rank=r, world_size=2,
                                source=_source(dataset, r, 2)) for r in range(2)]  # fmt: skip
    assert sorted(i for p in parts for b in p for i in b.event_ids) == sorted(ids)


def test_difficulty_table_is_fitted_and_reweights_events(dataset: Path) -> None:
    source = _source(dataset)
    assert source.sample(next(iter(source.stream))).weight == 1.0  # no table yet
    table = fit_difficulty(str(dataset), "train", n_events=12, source=source)
    again = fit_difficulty(str(dataset), "train", n_events=12, source=_source(dataset))
    assert table == again  # same events on every rank -> same table
    weights = [source.sample(e).weight for e in EventStream(dataset, "train", shuffle=False)]
    assert len(set(weights)) > 1 and abs(sum(weights) / len(weights) - 1.0) < 0.5
