"""Linear probes on synthetic data with known answers: ridge, softmax regression, targets, report table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.probe.fit import (
    Standardiser,
    accuracy,
    balanced_accuracy,
    fit_logistic,
    fit_ridge,
    r2_score,
)
from analysis.probe.report import probe_section, probe_table
from analysis.probe.targets import next_hit_targets


def test_ridge_recovers_known_weights_and_r2() -> None:
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 10.0, 0.1, 1000.0, 1.0])  # standardisation must make these comparable
    x = rng.standard_normal((3000, 5)) * scale + 5.0
    w_true = np.array([2.0, -0.3, 10.0, 0.001, 0.0])
    noise = 0.5
    y = x @ w_true + 1.0 + noise * rng.standard_normal(3000)
    fit = fit_ridge(x[:1500], y[:1500], x[1500:2000], y[1500:2000])
    w_raw = fit.weight / fit.scale.std  # back to the units of x
    np.testing.assert_allclose(w_raw, w_true, atol=0.03)
    expected = 1.0 - noise**2 / np.var(x[2000:] @ w_true)  # the best any predictor can do
    assert r2_score(y[2000:], fit.predict(x[2000:])) == pytest.approx(expected, abs=0.01)
    assert fit.alpha <= 1e-2  # little noise: a small penalty wins on the validation slice


def test_ridge_on_pure_noise_scores_about_zero_and_prefers_a_large_penalty() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2000, 40)), rng.standard_normal(2000)
    fit = fit_ridge(x[:600], y[:600], x[600:1000], y[600:1000])
    assert abs(r2_score(y[1000:], fit.predict(x[1000:]))) < 0.03
    assert fit.alpha >= 1.0


def test_constant_feature_and_r2_edges() -> None:
    x = np.c_[np.arange(10.0), np.ones(10)]
    np.testing.assert_array_equal(Standardiser.fit(x)(x)[:, 1], 0.0)
    assert r2_score(np.arange(5.0), np.arange(5.0)) == 1.0
    assert r2_score(np.arange(5.0), np.full(5, 2.0)) == 0.0
    assert np.isnan(r2_score(np.ones(3), np.zeros(3)))


def test_logistic_reaches_the_bayes_accuracy_of_a_known_softmax() -> None:
    rng = np.random.default_rng(2)
    w_true = np.array([[3.0, -3.0, 0.0], [0.0, 3.0, -3.0]])  # (d=2, c=3)
    x = rng.standard_normal((6000, 2))
    p = np.exp(x @ w_true)
    p /= p.sum(1, keepdims=True)
    labels = np.array([7, 8, 9])  # arbitrary label values come back as themselves
    c = labels[(rng.random(6000)[:, None] > np.cumsum(p, 1)).sum(1)]
    bayes = labels[np.argmax(x @ w_true, 1)]
    fit = fit_logistic(x[:3000], c[:3000], x[3000:4000], c[3000:4000])
    pred = fit.predict(x[4000:])
    assert accuracy(pred, bayes[4000:]) > 0.97  # the fitted boundaries are the true ones
    assert accuracy(c[4000:], pred) == pytest.approx(accuracy(c[4000:], bayes[4000:]), abs=0.02)


def test_logistic_separates_separable_classes_and_balanced_accuracy_counts_rare_ones() -> None:
    rng = np.random.default_rng(3)
    c = (rng.random(2000) < 0.1).astype(int)  # rare class 1
    x = np.c_[c * 4.0 + rng.standard_normal(2000) * 0.5, rng.standard_normal(2000)]
    fit = fit_logistic(x[:1000], c[:1000], x[1000:1400], c[1000:1400])
    assert accuracy(c[1400:], fit.predict(x[1400:])) > 0.99
    majority = np.zeros(600, int)
    assert accuracy(c[1400:], majority) > 0.85 and balanced_accuracy(c[1400:], majority) == 0.5


def test_next_hit_targets_of_a_straight_track() -> None:
    # a straight track at phi = 0.3 rad, dz/dr = 0.5, hits at r = 30, 31, 31.2 (within the margin), 33
    r = np.array([33.0, 30.0, 31.0, 31.2])
    pts = np.c_[np.ones(4), r * np.cos(0.3), r * np.sin(0.3), 0.5 * r]
    out = next_hit_targets(pts, np.array([0, 0, 0, 0]))
    np.testing.assert_allclose(out["next_hit_dz_dr"], [np.nan, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(out["next_hit_rdphi_dr"], [np.nan, 0.0, 0.0, 0.0], atol=1e-9)
    # r=31 skips r=31.2 (closer than the 0.5 cm margin) and goes to 33
    np.testing.assert_allclose(out["next_hit_distance_cm"], [np.nan, np.hypot(1, 0.5), np.hypot(2, 1),
                                                             np.hypot(1.8, 0.9)])  # fmt: skip
    none = next_hit_targets(pts, np.array([-1, -1, 2, 3]))  # no track, or alone on its track
    assert np.isnan(none["next_hit_distance_cm"]).all()


def _result() -> dict:
    src = {"backbone": {"r2": 0.5}, "random_init": {"r2": 0.2}, "raw": {"r2": 0.1},
           "backbone_final_norm": {"r2": float("nan")}}  # fmt: skip
    cls = {k: {"accuracy": 0.9, "balanced_accuracy": 0.6} for k in src} | {
        "majority_class": {"accuracy": 0.8}
    }
    return {"results": {"log_pt": {"all": src, "non_noise": src}, "pid": {"all": cls}},
            "targets": {"log_pt": "ln pT [GeV/c]", "pid": "PID class"}, "features": {"backbone": "prenorm"},
            "skipped": {"eta": "no momenta"}, "n_train_events": 10}  # fmt: skip


def test_probe_table_rows_and_report_section(tmp_path: Path) -> None:
    table = probe_table(_result()).splitlines()
    assert table[0] == ("| target | points | metric | backbone | random init | raw inputs | "
                        "backbone, after final norm |")  # fmt: skip
    assert table[2] == "| log_pt [ln pT [GeV/c]] | all | R² | 0.500 | 0.200 | 0.100 | – |"
    assert table[3].startswith("| log_pt [ln pT [GeV/c]] | non-noise |")
    cls = "0.900 (0.600)"
    metric = "accuracy (balanced); majority class 0.800"
    assert table[4] == f"| pid [PID class] | all | {metric} | {cls} | {cls} | {cls} | {cls} |"
    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-a" / "probe.json").write_text(json.dumps(_result()))
    (tmp_path / "run-b").mkdir()  # no probe: no table
    md = "\n".join(probe_section(tmp_path))
    assert md.startswith("## Probes") and "### run-a" in md and "run-b" not in md
    assert "eta skipped: no momenta" in md and "before the final RMSNorm" in md
    assert probe_section(tmp_path / "run-b") == []


def test_point_subsets_are_bounded_spread_over_events_and_in_order() -> None:
    from analysis.probe.run import select_points, stack_targets
    from scaling.data.schema import Event

    rng = np.random.default_rng(4)
    events = []
    for i, n in enumerate((50, 0, 150)):
        pts = np.c_[rng.uniform(1, 2, n), rng.normal(40, 5, (n, 2)), rng.normal(0, 20, n)].astype(np.float32)
        pid = rng.integers(0, 5, n).astype(np.int8)
        events.append(Event(points=pts, track_id=rng.integers(-1, 3, n), pid=pid, noise=np.zeros(n, np.uint8),
                            event_id=i))  # fmt: skip
    keep = select_points(events, 100, seed=0)
    assert sum(map(len, keep)) == 100 and len(keep[1]) == 0 and 10 < len(keep[0]) < 45
    assert all((np.diff(k) > 0).all() and (k < ev.n_points).all() for k, ev in zip(keep, events, strict=True))
    assert [len(k) for k in select_points(events, 1000, seed=0)] == [50, 0, 150]  # under the cap: every point
    y = stack_targets(events, keep)
    np.testing.assert_array_equal(
        y["pid"], np.concatenate([ev.pid[k] for ev, k in zip(events, keep, strict=True)])
    )
    assert "log_pt" not in y  # no track table: no momenta, no target (the probe skips it with a note)
