"""Features of a real (randomly initialised) Mamba-2 point model: packing, permutation, no gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.downstream.features import load_or_extract
from analysis.downstream.sources import BackboneSource, RawSource
from scaling.data.schema import Event
from scaling.inputs.coordinates import Normalizer
from scaling.inputs.serialization import serialize
from scaling.model import ModelConfig, build_model, resolve_model_config
from scaling.train.batches import build_normalizer
from scaling.train.config import DataConfig, TrainConfig

pytestmark = pytest.mark.integration
torch.set_num_threads(1)

STATS = {
    "energy_mean": 200.0, "energy_std": 100.0, "r_min": 30.0, "r_max": 78.0, "z_min": -105.0,
    "z_max": 105.0, "eta_min": -2.0, "eta_max": 2.0, "phi_min": -np.pi, "phi_max": np.pi,
    "r_edges": [30, 38, 46, 54, 62, 70, 78], "eta_edges": list(np.linspace(-2, 2, 9)),
    "phi_edges": list(np.linspace(-np.pi, np.pi, 9)),
    "points_per_event": {"min": 10, "median": 20, "max": 40, "mean": 20},
}  # fmt: skip


def _events(n: int) -> list[Event]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        k = int(rng.integers(10, 30))
        r, phi = rng.uniform(30, 78, k), rng.uniform(-np.pi, np.pi, k)
        pts = np.stack(
            [rng.uniform(50, 400, k), r * np.cos(phi), r * np.sin(phi), rng.uniform(-90, 90, k)], 1
        )
        pid = rng.integers(0, 5, k).astype(np.int8)
        out.append(Event(points=pts.astype(np.float32), track_id=rng.integers(0, 3, k), pid=pid,
                         noise=np.zeros(k, np.uint8), event_id=i))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def source() -> BackboneSource:
    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(name="tiny", chunk_size=16, n_freq=2))
    model = build_model(resolve_model_config(cfg.model), out_dim=12)
    return BackboneSource(model, cfg, STATS, key="bb-test")


def test_features_come_back_in_original_point_order(source: BackboneSource) -> None:
    events = _events(3)
    packed = source.extract(events)  # three events packed along one sequence with seq_idx
    norm = Normalizer.from_stats(STATS)
    for ev, got in zip(events, packed, strict=True):
        f = norm.features(ev.points)
        perm = serialize(f, "raster", STATS)
        with torch.no_grad():
            h = source.model.backbone_features(torch.from_numpy(f[perm])[None])[0].numpy()  # serialised order
        assert got.shape == (ev.n_points, source.width)
        np.testing.assert_allclose(got[perm], h, atol=2e-5, rtol=1e-4)  # row perm[j] = output j
        assert not np.allclose(got, h)  # the serialisation really permuted something


def test_backbone_is_frozen_and_gets_no_gradient(source: BackboneSource, tmp_path: Path) -> None:
    assert all(not p.requires_grad for p in source.model.parameters())
    data = load_or_extract(source, _events(2), split="test", n_events=2, cache_dir=tmp_path)
    x = torch.from_numpy(data.features[0])
    assert not x.requires_grad and all(p.grad is None for p in source.model.parameters())


def test_raw_source_is_the_normalised_input(tmp_path: Path) -> None:
    ev = _events(1)[0]
    np.testing.assert_array_equal(
        RawSource(STATS).extract([ev])[0], Normalizer.from_stats(STATS).features(ev.points)
    )


def test_sources_build_the_runs_inputs_with_its_energy_option() -> None:
    """A run trained on log energy is read with log energy (the trainer's build_normalizer)."""
    cfg = TrainConfig(
        model=ModelConfig(name="tiny", chunk_size=16, n_freq=2), data=DataConfig(energy_feature="log")
    )
    source = BackboneSource(None, cfg, STATS, key="bb-log")
    ev = _events(1)[0]
    trainer = build_normalizer(cfg.data, STATS).features(ev.points)
    np.testing.assert_array_equal(source.normalizer.features(ev.points), trainer)
    np.testing.assert_array_equal(RawSource(STATS, cfg.data).extract([ev])[0], trainer)
    assert not np.allclose(trainer[:, 0], Normalizer.from_stats(STATS).features(ev.points)[:, 0])
    assert RawSource(STATS, cfg.data).key != RawSource(STATS).key  # feature caches kept apart
