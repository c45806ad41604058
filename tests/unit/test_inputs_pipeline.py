"""Per-event pipeline and packing: serialised features, bad events, packed vs padded batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scaling.data.schema import Event
from scaling.data.stats import StatsAccumulator
from scaling.inputs import (
    Normalizer,
    pack_by_token_budget,
    pack_samples,
    pad_samples,
    prepare_event,
)
from scaling.objectives import ObjectiveConfig, build_objective


def _event(rng: np.random.Generator, n: int, event_id: int) -> Event:
    r = rng.uniform(30.0, 78.0, n)
    phi = rng.uniform(-math.pi, math.pi, n)
    z = rng.uniform(-100.0, 100.0, n)
    pts = np.stack([rng.exponential(250.0, n), r * np.cos(phi), r * np.sin(phi), z], axis=1)
    return Event(
        points=pts.astype(np.float32),
        track_id=np.zeros(n, np.int64),
        pid=np.zeros(n, np.int8),
        noise=np.zeros(n, np.uint8),
        event_id=event_id,
    )


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    rng = np.random.default_rng(0)
    acc = StatsAccumulator(sample_points=4000)
    for i in range(4):
        acc.add(_event(rng, 500, i).points)
    return Normalizer.from_stats(acc.finish())


def test_prepare_event_serialises_features_and_builds_targets(norm: Normalizer) -> None:
    obj = build_objective(ObjectiveConfig(k=5))
    ev = _event(np.random.default_rng(1), 200, 42)
    s = prepare_event(ev, normalizer=norm, serialization="raster", objective=obj)
    assert s.event_id == 42 and s.n_points == 200
    np.testing.assert_array_equal(s.features, norm.features(ev.points)[s.perm])
    assert s.targets["target"].shape == (200, 15) and s.targets["mask"].any()


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_events_are_defined(norm: Normalizer, n: int) -> None:
    obj = build_objective(ObjectiveConfig())
    s = prepare_event(
        _event(np.random.default_rng(2), n, 7), normalizer=norm, serialization="raster", objective=obj
    )
    assert s.n_points == n and not s.targets["mask"].any()


def test_nan_event_names_the_event(norm: Normalizer) -> None:
    ev = _event(np.random.default_rng(3), 20, 1234)
    ev.points[5, 2] = np.nan
    obj = build_objective(ObjectiveConfig())
    with pytest.raises(ValueError, match="event 1234: non-finite coordinate at spacepoint 5"):
        prepare_event(ev, normalizer=norm, serialization="raster", objective=obj)
    with pytest.raises(ValueError, match="unknown order"):
        prepare_event(
            _event(np.random.default_rng(3), 5, 1), normalizer=norm, serialization="zorder", objective=obj
        )


def test_packing_concatenates_without_padding(norm: Normalizer) -> None:
    obj = build_objective(ObjectiveConfig(k=3))
    rng = np.random.default_rng(4)
    lengths = [50, 1, 120, 0, 30]
    samples = [
        prepare_event(_event(rng, n, 10 + i), normalizer=norm, serialization="raster", objective=obj)
        for i, n in enumerate(lengths)
    ]
    b = pack_samples(samples)
    assert b.n_tokens == sum(lengths) and b.n_events == 5 and b.event_ids == [10, 11, 12, 13, 14]
    assert b.features.shape == (1, 201, 4) and b.seq_idx.shape == (1, 201)
    assert b.seq_idx.dtype == torch.int32 and b.cu_seqlens.tolist() == [0, 50, 51, 171, 171, 201]
    assert torch.equal(b.seq_idx[0], torch.repeat_interleave(torch.arange(5), torch.tensor(lengths)).int())
    assert torch.equal(b.features[0, 51:171], torch.from_numpy(samples[2].features))
    assert b.targets["target"].shape == (201, 9) and b.targets["difficulty"].shape == (5,)
    assert b.weights.shape == (5,)
    pred = torch.zeros(1, 201, obj.out_dim, requires_grad=True)
    loss = obj.loss(pred, b)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    with pytest.raises(ValueError, match="max_tokens=100"):
        pack_samples(samples, max_tokens=100)
    assert pack_samples(samples[2:3], max_tokens=100).n_tokens == 120  # one long event is allowed


def test_token_budget_never_splits_events(norm: Normalizer) -> None:
    obj = build_objective(ObjectiveConfig(k=2))
    rng = np.random.default_rng(5)
    lengths = [40, 30, 500, 20, 20, 20, 90]
    samples = [
        prepare_event(_event(rng, n, i), normalizer=norm, serialization="radial", objective=obj)
        for i, n in enumerate(lengths)
    ]
    groups = list(pack_by_token_budget(iter(samples), max_tokens=100))
    assert [[s.event_id for s in g] for g in groups] == [[0, 1], [2], [3, 4, 5], [6]]
    for g in groups:
        assert len(g) == 1 or sum(s.n_points for s in g) <= 100
    filled = list(pack_by_token_budget(iter(samples), max_tokens=100, lookahead=3))
    assert sorted(s.event_id for g in filled for s in g) == list(range(7))  # each event exactly once
    assert [[s.event_id for s in g] for g in filled] == [[0, 1, 3], [2], [4, 5], [6]]
    padded = pad_samples(samples)
    assert padded.features.shape == (7, 500, 4)
    assert padded.padding_fraction == pytest.approx(1 - sum(lengths) / (7 * 500))
    with pytest.raises(ValueError, match="max_tokens"):
        next(pack_by_token_budget(iter(samples), max_tokens=0))


def test_simulated_events_go_through_the_whole_pipeline() -> None:
    from scaling.data.simulator import simulate_events, small_config

    events = list(simulate_events(3, seed=0, cfg=small_config()))
    acc = StatsAccumulator()
    for ev in events:
        acc.add(ev.points)
    norm = Normalizer.from_stats(acc.finish())
    obj = build_objective(ObjectiveConfig())
    samples = [prepare_event(ev, normalizer=norm, serialization="raster", objective=obj) for ev in events]
    batch = pack_samples(samples)
    assert batch.n_tokens == sum(ev.n_points for ev in events) and batch.targets["mask"].any()
    pred = torch.zeros(1, batch.n_tokens, obj.out_dim, requires_grad=True)
    loss = obj.loss(pred, batch)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(pred.grad).all()
