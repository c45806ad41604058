"""Lookup baselines, target scaling, the physical metric, Huber loss and the validation ratios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scaling.data.loader import EventStream
from scaling.data.shards import read_manifest
from scaling.inputs.coordinates import Normalizer
from scaling.inputs.pipeline import Sample, pack_samples
from scaling.objectives import ObjectiveConfig, build_objective
from scaling.objectives.baseline import (
    LookupPredictor,
    check_baselines,
    fit_lookup_baselines,
    predict_lookup,
)
from scaling.objectives.knnn import physical_offsets, physical_search_positions
from scaling.objectives.scaling import fit_target_stats, scale_targets, unscale_targets
from scaling.train.batches import BatchSource, fit_statistics
from scaling.train.config import DataConfig, SimulateConfig
from scaling.train.data_setup import ensure_dataset
from scaling.train.validation import ratio_summary, validation_row

GEOMETRY = {
    "r_min": 30.0,
    "r_max": 78.0,
    "phi_min": -np.pi,
    "phi_max": np.pi,
    "eta_min": -1.5,
    "eta_max": 1.5,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("d") / "data"
    sim = SimulateConfig(enabled=True, train_events=10, val_events=4, shard_events=5, profile="small")
    ensure_dataset(DataConfig(dataset_dir=str(root), simulate_if_missing=sim))
    return root


def _source(root: Path, **objective: object) -> BatchSource:
    obj = build_objective(ObjectiveConfig(k=4, **objective))  # type: ignore[arg-type]
    stats = read_manifest(root)["stats"]
    obj.bind_stats(stats)
    stream = EventStream(root, "train", seed=0, shuffle=False, epochs=1)
    return BatchSource(stream, normalizer=Normalizer.from_stats(stats), objective=obj, serialization="raster",
                       seed=0, micro_batch_events=2)  # fmt: skip


def test_lookup_predicts_the_mean_target_of_each_radial_bin() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    feats = np.zeros((n, 4))
    feats[:, 1] = rng.integers(0, 48, n) / 47.0  # 48 discrete layers
    feats[:, 3] = rng.random(n)
    # target: slot 0 = layer-dependent constant + noise; slot 1 = eta-dependent
    target = np.zeros((n, 2, 3))
    target[:, 0, 0] = 2.0 * feats[:, 1] + 0.01 * rng.standard_normal(n)
    target[:, 1, 2] = np.where(feats[:, 3] > 0.5, 1.0, -1.0)
    mask = np.ones((n, 2), bool)
    mask[::7, 1] = False  # masked entries must not enter the means
    target[::7, 1] = 100.0
    tables = fit_lookup_baselines([(feats, target.reshape(n, 6), mask)], slots=2, n_coords=3)
    check_baselines(tables, 2, 3)
    pred = predict_lookup(tables["layer"], torch.tensor(feats, dtype=torch.float32)).numpy().reshape(n, 2, 3)
    assert np.abs(pred[:, 0, 0] - 2.0 * feats[:, 1]).max() < 0.01  # one bin per layer
    assert np.abs(pred[:, 1, 2]).mean() < 0.2  # the layer table cannot see eta: mean of +-1 is ~0
    fine = predict_lookup(tables["layer_eta"], torch.tensor(feats, dtype=torch.float32)).numpy()
    fine = fine.reshape(n, 2, 3)
    # the layer x eta table sees eta; its bins straddle 0.5 at most once per layer
    assert np.mean(np.abs(fine[:, 1, 2] - target[:, 1, 2].clip(-1, 1)) < 0.05) > 0.85
    with pytest.raises(ValueError, match="baseline.json: layer table is for"):
        check_baselines(tables, 3, 3)


def test_target_scaling_round_trips_and_standardises() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    raw = np.stack([rng.standard_normal(n) * 5 + 2, rng.standard_cauchy(n), rng.random(n)], axis=1)
    raw = raw.reshape(n, 3)
    mask = np.ones((n, 1), bool)
    mask[:10] = False
    for kind in ("standard", "robust"):
        stats = fit_target_stats([(raw, mask)], slots=1, n_coords=3, kind=kind)
        scaled = scale_targets(raw, mask, stats, 3)
        valid = scaled[mask[:, 0]]
        np.testing.assert_allclose(valid.mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(valid.std(0), 1.0, atol=1e-3)
        assert np.all(scaled[~mask[:, 0]] == 0.0)
        back = unscale_targets(scaled, stats, 3)
        np.testing.assert_allclose(back[mask[:, 0]], raw[mask[:, 0]], rtol=1e-4, atol=1e-4)
    # the robust transform tames the Cauchy tail: its largest value is a few sigma, not thousands
    robust = scale_targets(raw, mask, fit_target_stats([(raw, mask)], 1, 3, "robust"), 3)
    standard = scale_targets(raw, mask, fit_target_stats([(raw, mask)], 1, 3, "standard"), 3)
    assert np.abs(robust[:, 1]).max() < 10 < np.abs(standard[:, 1]).max() * 3
    with pytest.raises(ValueError, match="no valid target"):
        fit_target_stats([(raw, np.zeros_like(mask))], 1, 3, "standard")


def test_physical_offsets_are_centimetres() -> None:
    # two points on one radial line at eta = 0: r 40 -> 41 cm, same phi; a third rotated by 1 cm of arc at 41
    r01 = (np.array([40.0, 41.0, 41.0]) - 30.0) / 48.0
    phi01 = np.array([0.5, 0.5, 0.5 + (1.0 / 41.0) / (2 * np.pi)])
    eta01 = np.full(3, 0.5)
    pos = np.stack([r01, phi01, eta01], axis=1)
    off = physical_offsets(pos, np.array([[1, 2], [-1, -1], [-1, -1]]), GEOMETRY)
    np.testing.assert_allclose(off[0, 0], [1.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(off[0, 1], [1.0, 40.0 / 41.0, 0.0], atol=1e-9)  # r_i * dphi
    assert np.all(off[1:] == 0.0)
    # the search metric: 1 cm of r and 1 cm of arc at the mid radius are equally far
    stretched = physical_search_positions(pos, GEOMETRY)
    r_ref = 54.0
    assert stretched[1, 0] - stretched[0, 0] == pytest.approx((1.0 / 48.0) * 48.0 / (2 * np.pi * r_ref))


def test_physical_metric_prefers_the_same_track_over_a_near_radius_in_normalised_units() -> None:
    """In the normalised cube 1 cm of r weighs ~7x 1 cm of arc; the physical metric picks the hit 1 cm away in
    arc (same track, next layer) over one 0.3 cm away in r but 3 cm away in arc."""
    feats = np.zeros((3, 4), np.float32)
    cm_r, cm_arc = 1.0 / 48.0, 1.0 / (2 * np.pi * 54.0)
    feats[:, 1:] = [[0.5, 0.5, 0.5], [0.5 + 2 * cm_r, 0.5 + 0.2 * cm_arc, 0.5],
                    [0.5 + 0.3 * cm_r, 0.5 + 3 * cm_arc, 0.5]]  # fmt: skip
    for metric, nearest in (("normalised", 2), ("physical", 1)):
        obj = build_objective(ObjectiveConfig(k=1, metric=metric))
        obj.bind_stats(GEOMETRY)
        t = obj.build_targets(feats)["target"]
        expect = feats[nearest, 1] - feats[0, 1]
        scale = 48.0 if metric == "physical" else 1.0
        assert t[0, 0] == pytest.approx(expect * scale, rel=1e-5), metric


def test_huber_is_quadratic_inside_delta_and_linear_outside() -> None:
    obj = build_objective(ObjectiveConfig(k=1, loss="huber", huber_delta=1.0))
    diff = torch.tensor([0.5, -0.5, 3.0, -3.0])
    np.testing.assert_allclose(obj._penalty(diff).numpy(), [0.25, 0.25, 5.0, 5.0])
    assert build_objective(ObjectiveConfig(k=1))._penalty(torch.tensor([3.0])).item() == 9.0


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="objective.metric: 'cm' is not one of normalised, physical"):
        ObjectiveConfig(metric="cm")
    with pytest.raises(ValueError, match="target_backend=tree"):
        ObjectiveConfig(metric="physical", target_backend="torch")
    obj = build_objective(ObjectiveConfig(metric="physical"))
    with pytest.raises(ValueError, match="manifest stats lack"):
        obj.bind_stats({"r_min": 30.0})
    scaled = build_objective(ObjectiveConfig(target_scaling="standard"))
    with pytest.raises(ValueError, match="no statistics fitted"):
        scaled.build_targets(np.random.default_rng(0).random((20, 4)).astype(np.float32))
    with pytest.raises(ValueError, match="data.energy_feature"):
        Normalizer.from_stats(read_manifest_stats(), energy="sqrt")


def read_manifest_stats() -> dict:
    return {"energy_mean": 1.0, "energy_std": 1.0, "r_min": 0.0, "r_max": 1.0, "eta_min": 0.0, "eta_max": 1.0,
            "phi_min": 0.0, "phi_max": 1.0}  # fmt: skip


@pytest.mark.parametrize("scaling", ["none", "robust"])
def test_fit_statistics_baseline_scores_ratio_one_against_itself(dataset: Path, scaling: str) -> None:
    source = _source(dataset, metric="physical", target_scaling=scaling)
    fitted = fit_statistics(str(dataset), "train", n_events=10, source=source)
    assert (fitted["target_stats"] is None) == (scaling == "none")
    samples = [source.sample(e) for e in EventStream(dataset, "train", shuffle=False, epochs=1)]
    batch = pack_samples(samples)
    obj = source.objective
    pred = predict_lookup(fitted["baseline"]["layer"], batch.features)
    base = float(obj.loss(pred, batch))
    zero = float(obj.loss(torch.zeros_like(pred), batch))
    assert base < zero  # the table beats predicting zero offsets
    row = validation_row(base, [1.0, 2.0, 3.0], {"layer": {"loss": base, "coord_mse": [1.0, 1.0, 3.0]}},
                         obj.coordinates)  # fmt: skip
    assert row["val_loss_ratio"] == pytest.approx(1.0)
    assert row["val_coord_ratio"] == {"dr": 1.0, "rdphi": 2.0, "dz": 1.0}
    if scaling == "robust":  # scaled targets: the valid entries are centred per slot and coordinate
        valid = batch.targets["target"].view(-1, 4, 3)[batch.targets["mask"]]
        assert abs(float(valid.mean())) < 0.3


def test_absolute_targets_baseline_is_own_position_plus_mean_offset(dataset: Path) -> None:
    """The paper's absolute neighbour positions: the trivial predictor is where the point is plus the layer's
    mean offset. In r and eta it scores exactly what the table scores on relative targets; in phi it differs
    only where a neighbour lies across phi = 0 / 1 (the absolute target jumps by a full turn there), and it is
    far better than the layer's mean absolute position (which ignores where the point is)."""
    coords, loss = {}, {}
    for relative in (True, False):
        source = _source(dataset, relative_targets=relative, difficulty_rescaling=False)
        fitted = fit_statistics(str(dataset), "train", n_events=10, source=source)
        obj = source.objective
        batch = pack_samples(
            [source.sample(e) for e in EventStream(dataset, "train", shuffle=False, epochs=1)]
        )
        pred = obj.baseline_predictor(fitted["baseline"]["layer"])(batch.features)
        sq, n = obj.coordinate_errors(pred, batch.targets)
        coords[relative], loss[relative] = (sq / n).numpy(), float(obj.loss(pred, batch))
        if not relative:
            layer_mean = LookupPredictor(fitted["baseline"]["layer"])(batch.features)  # mean offset only
            plain = fit_lookup_baselines(
                [(batch.features.numpy()[0], batch.targets["target"].numpy(), batch.targets["mask"].numpy())],
                4,
                3,
            )
            naive = float(obj.loss(predict_lookup(plain["layer"], batch.features), batch))
            assert loss[False] < 0.2 * naive
            assert float(obj.loss(layer_mean, batch)) > loss[False]
    np.testing.assert_allclose(coords[False][[0, 2]], coords[True][[0, 2]], rtol=1e-4)
    with pytest.raises(ValueError, match="target_scaling applies to offsets"):
        ObjectiveConfig(relative_targets=False, target_scaling="robust")


def test_next_token_has_its_lookup_analogue(dataset: Path) -> None:
    source = _source(dataset, name="next_token", metric="physical", target_scaling="standard")
    fitted = fit_statistics(str(dataset), "train", n_events=10, source=source)
    table = fitted["baseline"]["layer"]
    assert np.asarray(table["table"]).shape[2:] == (1, 3)  # one slot of (dr, r dphi, dz)
    batch = pack_samples([source.sample(e) for e in EventStream(dataset, "train", shuffle=False, epochs=1)])
    pred = predict_lookup(table, batch.features)
    assert float(source.objective.loss(pred, batch)) < float(
        source.objective.loss(torch.zeros_like(pred), batch)
    )


def test_ratio_summary_is_strict_json() -> None:
    out = ratio_summary([2.0, 0.8, float("nan")], {"val_loss": 1.0, "val_loss_ratio": float("nan")},
                        {"layer": {"loss": 1.0}})  # fmt: skip
    assert out["final_val_loss_ratio"] is None and out["best_val_loss_ratio"] == 0.8
    assert out["final_val_ratios"] == {"val_loss_ratio": None}


def test_samples_carry_weights_and_scaled_targets_after_fitting(dataset: Path) -> None:
    source = _source(dataset, target_scaling="standard")
    fit_statistics(str(dataset), "train", n_events=10, source=source)
    s: Sample = source.sample(next(iter(EventStream(dataset, "train", shuffle=False, epochs=1))))
    with source.objective.unscaled():
        raw = source.sample(next(iter(EventStream(dataset, "train", shuffle=False, epochs=1))))
    assert not np.allclose(s.targets["target"], raw.targets["target"])
    np.testing.assert_allclose(source.objective.scale(raw.targets)["target"], s.targets["target"])
