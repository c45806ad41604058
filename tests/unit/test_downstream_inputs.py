"""What the adapter reads: layer choice, training-split standardisation stored with the run, query init."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.downstream.adapters import AdapterConfig, TrackFinder
from analysis.downstream.inputs import LayerMix, fit_standardizer, layer_features, parse_layers
from analysis.downstream.run import run_on_splits
from analysis.downstream.train import AdapterBudgetConfig, AdapterScheduleConfig, DownstreamConfig
from tests.unit.test_downstream_train import _split

torch.set_num_threads(1)


def _cfg(**kw: object) -> DownstreamConfig:
    return DownstreamConfig(
        task="pid", n_display_events=1,
        adapter=AdapterConfig(d_proj=8, n_heads=2, depth=0, mlp_hidden=16),
        schedule=AdapterScheduleConfig(warmup_steps=1),
        budget=AdapterBudgetConfig(steps=3, batch_events=2), **kw,
    )  # fmt: skip


def test_standardisation_statistics_come_from_the_training_split_and_are_stored(tmp_path: Path) -> None:
    train, test = _split(6, 0), _split(4, 1)
    test.features = [f * 50.0 + 7.0 for f in test.features]  # a test split unlike the training one
    run_on_splits(_cfg(backbone="runs/x"), tmp_path / "run", train, test, 6)
    stored = json.loads((tmp_path / "run" / "input_stats.json").read_text())
    flat = np.concatenate(train.features).astype(np.float64)
    np.testing.assert_allclose(stored["mean"], flat.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stored["std"], flat.std(0), rtol=1e-9)
    assert stored["n_points"] == flat.shape[0] and stored["n_events"] == 6 and stored["split"] == "train"
    assert not np.allclose(stored["mean"], np.concatenate(test.features).mean(0), atol=1.0)


def test_standardised_inputs_are_zero_mean_unit_std_on_train_and_switch_off(tmp_path: Path) -> None:
    from analysis.downstream.regimes import build_regime_model

    train = _split(6, 0)
    train.features = [f * 300.0 + 40.0 for f in train.features]  # badly conditioned, like raw energy
    model, stats = build_regime_model(_cfg(backbone="runs/x"), 6, train)
    z = model.standardize(torch.from_numpy(np.concatenate(train.features)))
    np.testing.assert_allclose(z.mean(0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    off, stats_off = build_regime_model(_cfg(backbone="runs/x", standardize=False), 6, train)
    assert stats_off["mean"] is None and torch.equal(off.standardize.mean, torch.zeros(6))
    assert stats["regime"] == "frozen" and stats_off["n_points"] == 0


def test_adapter_only_standardises_raw_inputs_too() -> None:
    from analysis.downstream.regimes import build_regime_model

    train = _split(4, 2, width=4)
    model, stats = build_regime_model(_cfg(stem_width=16), 4, train)
    assert stats["regime"] == "adapter_only" and len(stats["mean"]) == 4
    assert model.head.stem.in_features == 4 and not torch.equal(model.standardize.std, torch.ones(4))


def test_fit_standardizer_floors_constant_columns() -> None:
    stats = fit_standardizer([np.ones((3, 2), np.float32), np.ones((2, 2), np.float32)])
    assert stats["std"] == [1.0, 1.0] and stats["mean"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="hold no points"):
        fit_standardizer([np.zeros((0, 2), np.float32)])


def test_layer_index_the_backbone_lacks_is_one_line_naming_key_and_fix() -> None:
    assert parse_layers("last").kind == "last" and parse_layers("0, 2", 2).indices == (0, 2)
    with pytest.raises(ValueError) as err:
        parse_layers("1,5", n_layers=4)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("layers='1,5'") and "use indices 0..4" in msg
    with pytest.raises(ValueError, match="use last, prenorm, mix or comma-separated"):
        DownstreamConfig(layers="penultimate")


def test_layer_features_widths_and_the_mix() -> None:
    from scaling.model import ModelConfig, build_model, resolve_model_config

    torch.manual_seed(0)
    model = build_model(resolve_model_config(ModelConfig(name="tiny", chunk_size=16, n_freq=2)), out_dim=3)
    x = torch.rand(1, 20, 4)
    with torch.no_grad():
        last = layer_features(model, x, None, parse_layers("last"))
        pre = layer_features(model, x, None, parse_layers("prenorm"))
        both = layer_features(model, x, None, parse_layers("0,2", 2))
        every = layer_features(model, x, None, parse_layers("mix", 2))
    w = model.cfg.width
    assert last.shape[-1] == pre.shape[-1] == w and both.shape[-1] == 2 * w and every.shape[-1] == 3 * w
    torch.testing.assert_close(last, model.backbone_features(x))
    torch.testing.assert_close(both[..., w:], pre)  # index 2 of a 2-layer model is the pre-norm stream
    mix = LayerMix(3)  # equal weights at initialisation: the mean of the layers
    torch.testing.assert_close(mix(every), every.unflatten(-1, (3, w)).mean(-2))


def test_queries_start_at_mask2former_scale() -> None:
    torch.manual_seed(0)
    big = TrackFinder(8, AdapterConfig(d_proj=32, n_queries=64))
    small = TrackFinder(8, AdapterConfig(d_proj=32, n_queries=64, query_init_std=0.02))
    assert 0.9 < float(big.query_feat.detach().std()) < 1.1 and float(small.query_feat.detach().std()) < 0.03
