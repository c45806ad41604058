"""Masked point modelling: the mask (fraction, events, padding), what the model sees of masked points, the
loss on masked points only, the K-means codebook, and a tiny run that beats the marginal token entropy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling.config import ConfigError
from scaling.data.loader import EventStream
from scaling.data.shards import read_manifest
from scaling.inputs.coordinates import Normalizer
from scaling.inputs.pipeline import PackedBatch, pack_samples
from scaling.model import ModelConfig, build_model, resolve_model_config
from scaling.objectives import ObjectiveConfig, build_objective
from scaling.objectives.masked import MaskedPointObjective, mask_points
from scaling.objectives.tokens import fit_kmeans, perplexity
from scaling.train.batches import BatchSource, first_samples
from scaling.train.config import DataConfig, SimulateConfig, load_train_config
from scaling.train.data_setup import ensure_dataset
from scaling.train.validation import validation_row

TINY = Path(__file__).resolve().parents[2] / "scaling" / "train" / "configs" / "tiny_cpu.yaml"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("d") / "data"
    sim = SimulateConfig(enabled=True, train_events=48, val_events=12, shard_events=24, profile="small")
    ensure_dataset(DataConfig(dataset_dir=str(root), simulate_if_missing=sim))
    return root


def _source(root: Path, **kw: object) -> tuple[MaskedPointObjective, BatchSource]:
    obj = build_objective(ObjectiveConfig(name="mpm", **kw))  # type: ignore[arg-type]
    stats = read_manifest(root)["stats"]
    obj.bind_stats(stats)
    stream = EventStream(root, "train", seed=0, shuffle=True, epochs=None)
    src = BatchSource(stream, normalizer=Normalizer.from_stats(stats), objective=obj, serialization="raster",
                      seed=0, micro_batch_events=4)  # fmt: skip
    return obj, src  # type: ignore[return-value]


def _model(obj: MaskedPointObjective, direction: str = "bidirectional") -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = resolve_model_config(ModelConfig(name="tiny", chunk_size=64, n_freq=2, direction=direction))
    return build_model(cfg, obj.out_dim, **obj.model_options())


def _predict(model: torch.nn.Module, obj: MaskedPointObjective, batch: PackedBatch) -> torch.Tensor:
    return model(batch.features, batch.seq_idx, **obj.model_inputs(batch))


@pytest.mark.parametrize("n", [0, 1, 3, 10, 373])
def test_mask_fraction_is_floor_ratio_n(n: int) -> None:
    mask = mask_points(n, 0.3, np.random.default_rng(n))
    assert mask.shape == (n,) and int(mask.sum()) == math.floor(0.3 * n)


def test_each_event_masks_its_own_points(dataset: Path) -> None:
    obj, src = _source(dataset, codebook_size=16)
    batch = src.next_batch()
    masked = batch.targets["masked"]
    assert masked.shape == (batch.n_tokens,) and masked.dtype == torch.bool
    for e in range(batch.n_events):  # floor(0.3 n) per event: none borrowed from or lent to a neighbour
        lo, hi = int(batch.cu_seqlens[e]), int(batch.cu_seqlens[e + 1])
        assert int(masked[lo:hi].sum()) == math.floor(0.3 * (hi - lo))
    # a packed batch has no padding; the model's mask input covers exactly the batch's tokens
    assert obj.model_inputs(batch)["mask"].shape == batch.seq_idx.shape
    # a fresh mask each epoch, the same one for the same (event, epoch)
    event = next(iter(EventStream(dataset, "train", shuffle=False, epochs=1)))
    again = src.sample(event).targets["masked"]
    assert np.array_equal(src.sample(event).targets["masked"], again)
    event.meta["epoch"] = 1
    assert not np.array_equal(src.sample(event).targets["masked"], again)


def test_masked_points_leak_nothing_and_unmasked_targets_do_not_count(dataset: Path) -> None:
    obj, src = _source(dataset, codebook_size=16)
    obj.fit_baselines(first_samples(str(dataset), "train", n_events=8, source=src))
    model = _model(obj)
    batch = src.next_batch()
    masked = batch.targets["masked"]
    changed = batch.features.clone()
    changed[0, masked] = torch.rand(int(masked.sum()), 4) * 3  # coordinates and energy of masked points
    other = PackedBatch(**{**vars(batch), "features": changed})
    out, out_changed = _predict(model, obj, batch), _predict(model, obj, other)
    torch.testing.assert_close(out, out_changed, rtol=0, atol=0)
    # targets at unmasked points (their features, hence tokens) do not move the loss
    moved = batch.features.clone()
    moved[0, ~masked] = torch.rand(int((~masked).sum()), 4) * 3
    shifted = PackedBatch(**{**vars(batch), "features": moved})
    assert torch.equal(obj.loss(out, batch), obj.loss(out, shifted))
    # ... while the masked points' targets do
    assert not torch.equal(obj.loss(out, batch), obj.loss(out, other))


def test_regression_target_counts_masked_points_only(dataset: Path) -> None:
    obj, src = _source(dataset, mpm_target="regression")
    table = obj.fit_baselines(first_samples(str(dataset), "train", n_events=8, source=src))
    assert obj.out_dim == 5 and len(table["mean"]["row"]) == 5
    batch = src.next_batch()
    pred = torch.randn(batch.n_tokens, 5)
    masked = batch.targets["masked"]
    other = pred.clone()
    other[~masked] += 10.0
    assert torch.equal(obj.loss(pred, batch), obj.loss(other, batch))


def test_codebook_is_used_and_stored(dataset: Path) -> None:
    obj, src = _source(dataset, codebook_size=64)
    table = obj.fit_baselines(first_samples(str(dataset), "train", n_events=16, source=src))["marginal"]
    assert np.asarray(table["codebook"]).shape == (64, 5)
    freq = np.exp(table["row"])
    assert abs(freq.sum() - 1) < 1e-6
    # a fresh objective takes the stored codebook back with its baseline
    fresh, _ = _source(dataset, codebook_size=64)
    fresh.baseline_predictor(table)
    assert torch.equal(fresh.centres, obj.centres)


def test_tiny_run_beats_the_marginal_token_entropy(dataset: Path) -> None:
    """30 AdamW steps of a width-32 bidirectional model, K = 32: validation cross-entropy below the marginal
    token entropy, masked top-1 accuracy above the most frequent token's rate, perplexity well above 1."""
    obj, src = _source(dataset, codebook_size=32)
    table = obj.fit_baselines(first_samples(str(dataset), "train", n_events=48, source=src))
    base = obj.baseline_predictor(table["marginal"])
    val_samples = first_samples(str(dataset), "val", n_events=12, source=src)
    val = [pack_samples(val_samples[i : i + 4]) for i in range(0, 12, 4)]
    entropy = float(np.mean([float(obj.loss(base(b.features), b)) for b in val]))
    model = _model(obj)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        batch = src.next_batch()
        loss = obj.loss(_predict(model, obj, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        preds = [_predict(model, obj, b) for b in val]
    ce = float(np.mean([float(obj.loss(p, b)) for p, b in zip(preds, val, strict=True)]))
    metrics = [obj.metrics(p, b) for p, b in zip(preds, val, strict=True)]
    top1 = np.mean([m["top1"] for m in metrics])
    majority = np.mean([m["majority_rate"] for m in metrics])
    ppl = np.mean([m["perplexity"] for m in metrics])
    print(f"mpm tiny: CE {ce:.3f} vs marginal entropy {entropy:.3f}; top-1 {top1:.3f} vs majority "
          f"{majority:.3f}; perplexity {ppl:.1f} of 32")  # fmt: skip
    assert ce < 0.95 * entropy
    assert top1 > majority + 0.05
    assert ppl > 8
    row = validation_row(ce, [], {"marginal": {"loss": entropy, "coord_mse": []}}, obj.coordinates)
    assert row["val_loss_ratio"] == pytest.approx(ce / entropy) and "val_coord_ratio" not in row


def test_kmeans_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"objective.codebook_size: no training points.*data.train_split"):
        fit_kmeans(torch.zeros(0, 5), 4)
    with pytest.raises(ValueError, match=r"objective.codebook_size=8: only 3 distinct"):
        fit_kmeans(torch.eye(3, 5).repeat(4, 1), 8)
    centres = fit_kmeans(torch.eye(5).repeat(3, 1), 5)
    assert torch.equal(centres.sort(0).values, torch.eye(5).sort(0).values)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective.mask_ratio=1.0", "objective.mask_ratio: must lie in (0, 1)"),
        ("objective.mask_ratio=0", "objective.mask_ratio: must lie in (0, 1)"),
        ("objective.mpm_target=vq", "objective.mpm_target: 'vq' is not one of tokens, vqvae, regression"),
        ("objective.name=masked", "objective.name: unknown objective 'masked'"),
        ("objective.mask_fraction=0.3", "objective.mask_fraction"),
        ("model.direction=sideways", "model.direction='sideways'"),
    ],
)
def test_bad_options_are_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_train_config(TINY, ["objective.name=mpm", override])
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["knnn", "next_token"])
def test_bidirectional_backbone_refuses_causal_only_objectives(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_train_config(TINY, [f"objective.name={name}", "model.direction=bidirectional"])
    assert "model.direction=bidirectional" in str(err.value) and "model.direction=causal" in str(err.value)
    assert "\n" not in str(err.value)
    for ok in ("mpm", "contrastive", "supervised"):
        load_train_config(TINY, [f"objective.name={ok}", "model.direction=bidirectional",
                                 "budget.micro_batch_events=2"])  # fmt: skip
    load_train_config(TINY, ["objective.name=mpm", "model.direction=causal"])  # MPM on a causal backbone


def test_vqvae_tokeniser_uses_its_codes_and_round_trips(dataset: Path) -> None:
    obj, src = _source(dataset, codebook_size=32, mpm_target="vqvae")
    table = obj.fit_baselines(first_samples(str(dataset), "train", n_events=24, source=src))["marginal"]
    batch = src.next_batch()
    tokens = obj.target_tokens(batch.features)
    used = perplexity(tokens, 32)
    print(f"vqvae K=32: perplexity {used:.1f}")
    assert used > 8
    fresh, _ = _source(dataset, codebook_size=32, mpm_target="vqvae")
    fresh.baseline_predictor(json.loads(json.dumps(table)))  # as read back from baseline.json
    assert torch.equal(fresh.target_tokens(batch.features), tokens)


def test_objectives_sweep_varies_only_the_objective() -> None:
    from launch.spec import expand_runs, load_spec, resolve_config

    path = TINY.parents[3] / "sweeps" / "objectives.yaml"
    spec, base, site = load_spec(path)
    cfgs = [resolve_config(plan, str(path)) for plan in expand_runs(spec, base, site, str(path))]
    names = {(c.objective.name, c.objective.mpm_target, c.model.direction) for c in cfgs}
    assert len(cfgs) == 21 and len(names) == 7 and {c.seed for c in cfgs} == {0, 1, 2}
    fixed = {(c.model.width, c.model.n_layers, c.optimizer.lr, c.budget.steps, c.budget.global_batch_events,
              c.schedule.warmup_steps) for c in cfgs}  # fmt: skip
    assert len(fixed) == 1
