"""Downstream metrics against hand-worked examples and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    adjusted_rand_score,
    confusion_matrix,
    precision_score,
    recall_score,
)

from analysis.downstream.metrics import classification_metrics, tracking_metrics


def _random_events(rng: np.random.Generator, n_events: int) -> tuple[np.ndarray, ...]:
    ev, tt, pp = [], [], []
    for e in range(n_events):
        n = int(rng.integers(5, 60))
        true = rng.integers(-1, 6, n)
        pred = np.where(rng.random(n) < 0.7, true, rng.integers(0, 8, n))
        ev.append(np.full(n, e * 3 + 1))  # non-contiguous event ids
        tt.append(true * 7 + 100)  # arbitrary track ids, negative stays negative only for -1 -> 93
        tt[-1][true < 0] = -1
        pp.append(pred + 1000)
    return np.concatenate(ev), np.concatenate(tt), np.concatenate(pp)


def test_ari_matches_sklearn_pooled_and_per_event() -> None:
    rng = np.random.default_rng(0)
    ev, tt, pp = _random_events(rng, 12)
    m = tracking_metrics(ev, tt, pp)
    keep = tt >= 0
    pooled_true = ev[keep] * 100000 + tt[keep]
    pooled_pred = ev[keep] * 100000 + pp[keep]
    assert m["ari_pooled"] == pytest.approx(adjusted_rand_score(pooled_true, pooled_pred), abs=1e-12)
    per_event = [adjusted_rand_score(tt[keep & (ev == e)], pp[keep & (ev == e)]) for e in np.unique(ev[keep])]
    assert m["ari_event_mean"] == pytest.approx(np.mean(per_event), abs=1e-12)
    assert m["ari_pooled"] != pytest.approx(m["ari_event_mean"], abs=1e-6)


def test_ari_edge_cases_match_sklearn() -> None:
    for true, pred in (([0, 0, 0], [1, 1, 1]), ([0, 1, 2], [5, 6, 7]), ([0, 0, 1], [0, 1, 2])):
        m = tracking_metrics(np.zeros(3), np.array(true), np.array(pred))
        assert m["ari_pooled"] == pytest.approx(adjusted_rand_score(true, pred))


def test_double_majority_hand_worked() -> None:
    # Event 0: true A = 4 points, true B = 3 points, one untracked point.
    #   pred X = A,A,A,B  -> 3/4 of X from A and 3/4 of A in X: match (A).
    #   pred Y = A,B,B    -> 2/3 of Y from B, 2/3 of B in Y: match (B).
    #   untracked point (true -1) predicted as X: ignored everywhere.
    # Event 1: true C = 2 points split 1/1 over pred Z, W: 1/2 is not > 1/2 -> no match.
    ev = np.array([0] * 8 + [1] * 2)
    tt = np.array([0, 0, 0, 0, 1, 1, 1, -1, 0, 0])
    pp = np.array([9, 9, 9, 8, 9, 8, 8, 9, 3, 4])
    m = tracking_metrics(ev, tt, pp)
    assert m["n_true_tracks"] == 3 and m["n_true_matched"] == 2
    assert m["efficiency"] == pytest.approx(2 / 3)
    assert m["n_pred_tracks"] == 4 and m["n_pred_matched"] == 2
    assert m["purity"] == pytest.approx(2 / 4)
    assert m["n_points"] == 9


def test_min_points_excludes_and_counts() -> None:
    ev = np.zeros(7, dtype=int)
    tt = np.array([0, 0, 0, 0, 0, 1, 1])
    pp = np.array([0, 0, 0, 0, 0, 2, 3])  # short track 1 is split: unmatched
    m = tracking_metrics(ev, tt, pp, min_points=3)
    assert m["n_true_excluded"] == 1 and m["efficiency"] == 1.0
    assert tracking_metrics(ev, tt, pp, min_points=1)["efficiency"] == pytest.approx(0.5)


def test_event_without_true_tracks_is_counted_not_scored() -> None:
    ev = np.array([0, 0, 0, 1, 1])
    tt = np.array([0, 0, 1, -1, -1])
    pp = np.array([0, 0, 1, 5, 5])
    m = tracking_metrics(ev, tt, pp)
    assert m["n_events"] == 2 and m["n_events_without_tracks"] == 1
    assert m["ari_event_mean"] == 1.0


def test_sphenix_selection_and_binned_efficiency() -> None:
    n = 25
    ev = np.zeros(3 * n, dtype=int)
    tt = np.repeat([0, 1, 2], n)
    pp = np.concatenate([np.zeros(n), np.ones(n), np.arange(n) + 10])  # track 2 shattered
    pt = np.repeat([2.0, 0.5, 3.0], n)
    eta = np.repeat([0.2, 0.1, 0.5], n)
    m = tracking_metrics(ev, tt, pp, selection="sphenix", pt=pt, eta=eta)
    assert m["n_true_eligible"] == 2 and m["efficiency"] == pytest.approx(0.5)
    bins = m["efficiency_vs_pt"]
    assert sum(bins["n_true"]) == 3
    with pytest.raises(ValueError, match="needs truth pt and eta"):
        tracking_metrics(ev, tt, pp, selection="sphenix")


def test_length_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="pred_track has 2 entries"):
        tracking_metrics(np.zeros(3), np.zeros(3), np.zeros(2))


def test_classification_against_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 4, 500))  # class 4 under-predicted
    m = classification_metrics(y, p, n_classes=5)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["macro_precision"] == pytest.approx(
        precision_score(y, p, average="macro", zero_division=0, labels=range(5))
    )
    assert m["macro_recall"] == pytest.approx(
        recall_score(y, p, average="macro", zero_division=0, labels=range(5))
    )
    assert m["confusion"] == confusion_matrix(y, p, labels=range(5)).tolist()
    per = precision_score(y, p, average=None, zero_division=0, labels=range(5))
    assert [m["per_class"][str(c)]["precision"] for c in range(5)] == pytest.approx(per.tolist())


def test_classification_hand_worked_and_errors() -> None:
    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), class_names=("a", "b"))
    assert m["accuracy"] == 0.75
    assert m["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "support": 2}
    assert m["per_class"]["a"]["recall"] == 0.5
    with pytest.raises(ValueError, match="outside 0..1"):
        classification_metrics(np.array([0, 2]), np.array([0, 1]), n_classes=2)
