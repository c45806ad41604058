"""Contrastive (NT-Xent on two augmented views) and the supervised reference: augmentations, pairing,
chance level log(2B - 1), a tiny run, and the labels flag."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling.config import ConfigError
from scaling.data.loader import EventStream
from scaling.data.schema import Event
from scaling.data.shards import read_manifest
from scaling.inputs.coordinates import Normalizer
from scaling.model import ModelConfig, build_model, resolve_model_config
from scaling.objectives import ObjectiveConfig, build_objective
from scaling.objectives.augment import AugmentConfig, augment_event
from scaling.objectives.contrastive import nt_xent
from scaling.train.batches import BatchSource, first_samples, validation_batches
from scaling.train.config import DataConfig, SimulateConfig, load_train_config
from scaling.train.data_setup import ensure_dataset

TINY = Path(__file__).resolve().parents[2] / "scaling" / "train" / "configs" / "tiny_cpu.yaml"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("d") / "data"
    sim = SimulateConfig(enabled=True, train_events=48, val_events=16, shard_events=24, profile="small")
    ensure_dataset(DataConfig(dataset_dir=str(root), simulate_if_missing=sim))
    return root


def _source(root: Path, name: str, events: int = 4, **kw: object) -> BatchSource:
    obj = build_objective(ObjectiveConfig(name=name, **kw))  # type: ignore[arg-type]
    stats = read_manifest(root)["stats"]
    obj.bind_stats(stats)
    stream = EventStream(root, "train", seed=0, shuffle=True, epochs=None)
    return BatchSource(stream, normalizer=Normalizer.from_stats(stats), objective=obj, serialization="raster",
                       seed=0, micro_batch_events=events)  # fmt: skip


def _event(n: int = 200) -> Event:
    rng = np.random.default_rng(0)
    r, phi, z = rng.uniform(30, 78, n), rng.uniform(-np.pi, np.pi, n), rng.normal(0, 40, n)
    pts = np.stack([rng.exponential(250, n), r * np.cos(phi), r * np.sin(phi), z], 1).astype(np.float32)
    return Event(points=pts, track_id=np.arange(n), pid=rng.integers(0, 5, n).astype(np.int8),
                 noise=np.zeros(n, np.uint8), event_id=7)  # fmt: skip


def test_augmentations_keep_the_physics() -> None:
    ev = _event()
    r0 = np.hypot(ev.points[:, 1], ev.points[:, 2])
    # rotation and reflection alone: radii kept, |z| kept, energies kept, something moved
    pure = AugmentConfig(z_reflection=1.0, smear_rphi_cm=0, smear_z_cm=0, smear_energy=0, dropout=0,
                         noise_fraction=0)  # fmt: skip
    view = augment_event(ev, pure, np.random.default_rng(1))
    np.testing.assert_allclose(np.hypot(view.points[:, 1], view.points[:, 2]), r0, rtol=1e-5)
    np.testing.assert_allclose(view.points[:, 3], -ev.points[:, 3], rtol=1e-6)
    np.testing.assert_allclose(view.points[:, 0], ev.points[:, 0])
    assert np.abs(view.points[:, 1] - ev.points[:, 1]).max() > 1.0
    # smearing at the resolution: r*phi moves by ~150 um, z by ~1 mm
    smear = AugmentConfig(phi_rotation=False, z_reflection=0, smear_energy=0, dropout=0, noise_fraction=0)
    view = augment_event(ev, smear, np.random.default_rng(2))
    dz = view.points[:, 3] - ev.points[:, 3]
    assert 0.05 < dz.std() < 0.2
    # dropout and injected noise points, labelled noise
    view = augment_event(ev, AugmentConfig(dropout=0.2, noise_fraction=0.1), np.random.default_rng(3))
    assert view.noise.sum() == 20 and 140 < view.n_points < 200
    view.validate("augmented")


def test_augmentations_that_empty_an_event_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"objective.augment.dropout=0.99: event 7 has no spacepoint left"):
        augment_event(_event(2), AugmentConfig(dropout=0.99), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"objective.augment: event 7 has no spacepoints"):
        augment_event(_event(0), AugmentConfig(), np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"objective.augment.dropout: must lie in \[0, 1\)"):
        load_train_config(TINY, ["objective.name=contrastive", "budget.micro_batch_events=2",
                                 "objective.augment.dropout=1.0"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"budget.micro_batch_events=1: contrastive"):
        load_train_config(TINY, ["objective.name=contrastive"])


def test_two_views_per_event_sit_together(dataset: Path) -> None:
    src = _source(dataset, "contrastive")
    batch = src.next_batch()
    assert batch.n_events == 8 and batch.event_ids[0::2] == batch.event_ids[1::2]
    lengths = (batch.cu_seqlens[1:] - batch.cu_seqlens[:-1]).tolist()
    assert lengths[0::2] != lengths[1::2]  # different views, not copies
    val = validation_batches(str(dataset), "val", n_events=16, rank=0, world_size=1, source=src)
    assert all(b.event_ids[0::2] == b.event_ids[1::2] for b in val) and sum(b.n_events for b in val) == 32


def test_nt_xent_chance_level_and_perfect_pairs() -> None:
    b = 6
    partner = torch.arange(2 * b) ^ 1
    assert float(nt_xent(torch.ones(2 * b, 8), partner, 0.1)) == pytest.approx(math.log(2 * b - 1))
    z = torch.randn(b, 32).repeat_interleave(2, 0)
    assert float(nt_xent(z, partner, 0.1)) < 0.1 * math.log(2 * b - 1)


def test_tiny_contrastive_run_beats_chance(dataset: Path) -> None:
    src = _source(dataset, "contrastive")
    obj = src.objective
    base = obj.baseline_predictor(obj.fit_baselines([])["constant"])
    val = validation_batches(str(dataset), "val", n_events=16, rank=0, world_size=1, source=src)
    chance = float(np.mean([float(obj.loss(base(b.features), b)) for b in val]))
    assert chance == pytest.approx(math.log(2 * 4 - 1), rel=1e-5)
    torch.manual_seed(0)
    cfg = resolve_model_config(ModelConfig(name="tiny", chunk_size=64, n_freq=2, direction="bidirectional"))
    model = build_model(cfg, obj.out_dim, **obj.model_options())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        batch = src.next_batch()
        loss = obj.loss(model(batch.features, batch.seq_idx), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        preds = [model(b.features, b.seq_idx) for b in val]
    nt = float(np.mean([float(obj.loss(p, b)) for p, b in zip(preds, val, strict=True)]))
    sims = np.array([obj.similarities(p, b) for p, b in zip(preds, val, strict=True)])
    pos, neg = sims[:, 0].mean(), sims[:, 1].mean()
    print(f"contrastive tiny: NT-Xent {nt:.3f} vs log(2B-1) {chance:.3f}; cos + {pos:.3f} - {neg:.3f}")
    assert nt < 0.9 * chance
    assert pos > neg + 0.05


def test_supervised_uses_labels_and_beats_the_marginals(dataset: Path) -> None:
    src = _source(dataset, "supervised")
    obj = src.objective
    assert obj.uses_labels
    samples = first_samples(str(dataset), "train", n_events=16, source=src)
    event = next(iter(EventStream(dataset, "train", shuffle=False, epochs=1)))
    np.testing.assert_array_equal(samples[0].targets["pid"], event.pid[samples[0].perm])
    base = obj.baseline_predictor(obj.fit_baselines(samples)["marginal"])
    val = validation_batches(str(dataset), "val", n_events=16, rank=0, world_size=1, source=src)
    marginal = float(np.mean([float(obj.loss(base(b.features), b)) for b in val]))
    torch.manual_seed(0)
    cfg = resolve_model_config(ModelConfig(name="tiny", chunk_size=64, n_freq=2))
    model = build_model(cfg, obj.out_dim, **obj.model_options())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        batch = src.next_batch()
        loss = obj.loss(model(batch.features, batch.seq_idx), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        val_loss = float(np.mean([float(obj.loss(model(b.features, b.seq_idx), b)) for b in val]))
    acc = np.mean([obj.accuracy(model(b.features, b.seq_idx), b)["pid"] for b in val])
    print(f"supervised tiny: CE {val_loss:.3f} vs marginals {marginal:.3f}; PID accuracy {acc:.3f}")
    assert val_loss < 0.98 * marginal
