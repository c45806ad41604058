"""Downstream metrics in pure numpy: track finding (ARI, TrackML double-majority efficiency/purity) and
point classification (accuracy, macro and per-class precision/recall, confusion matrix).

All inputs are flat per-point arrays concatenated over events, with `event_id` saying which event each point
belongs to; every computation is a handful of `np.unique`/`np.bincount` calls over those arrays, so a test set
of thousands of events is scored in well under a second.

    >>> m = tracking_metrics(event_id, true_track, pred_track, min_points=5)
    >>> m["ari_pooled"], m["ari_event_mean"], m["efficiency"], m["purity"]

Conventions (FM4NPP, Section 5; TrackML, Amrouche et al. 2019):
- Points whose true track is negative (no particle) take part in nothing.
- `ari_pooled` is the adjusted Rand index of one clustering of all test points, a cluster being an
  (event, track) pair: the paper's convention. `ari_event_mean` averages the per-event ARI; events without any
  true-track point have no ARI and are counted in `n_events_without_tracks`.
- A predicted track *matches* a true track (double majority) when more than half of the predicted track's
  points come from that true track and more than half of the true track's points are in the predicted track.
- `efficiency` = matched eligible true tracks / eligible true tracks, where a true track is eligible when it
  has at least `min_points` points (and, with truth kinematics and `selection="sphenix"`, pT > 1 GeV and
  |eta| < 1.1); the excluded count is reported. `purity` = matched predicted tracks / predicted tracks with
  at least `min_points` points (one minus the fake rate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPHENIX_SELECTION = {"min_points": 20, "pt_min_gev": 1.0, "abs_eta_max": 1.1}


def _dense_pair_ids(event: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factorise (event, label) pairs: returns (inverse (n,), event of each unique pair)."""
    event, label = event.astype(np.int64), label.astype(np.int64)
    if event.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, span = label.min(), int(label.max() - label.min()) + 1
    e_lo, e_span = event.min(), int(event.max() - event.min()) + 1
    if span * e_span < 2**62:  # one 1-D key: ~10x faster than np.unique(axis=0)
        uniq, inv = np.unique((event - e_lo) * span + (label - lo), return_inverse=True)
        return inv.reshape(-1), uniq // span + e_lo
    uniq, inv = np.unique(np.stack([event, label], axis=1), axis=0, return_inverse=True)
    return inv.reshape(-1), uniq[:, 0]


def _ari_from_sums(
    n: np.ndarray, sum_sq: np.ndarray, sum_a_sq: np.ndarray, sum_b_sq: np.ndarray
) -> np.ndarray:
    """Adjusted Rand index from the pair-confusion counts (scikit-learn's `pair_confusion_matrix` form).

    tp = sum n_ij^2 - n, fp = sum b_j^2 - sum n_ij^2, fn = sum a_i^2 - sum n_ij^2,
    tn = n^2 - tp - fp - fn - n;
    ARI = 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn)), and 1 when fn = fp = 0.
    """
    n, sum_sq = n.astype(np.float64), sum_sq.astype(np.float64)
    tp = sum_sq - n
    fp = sum_b_sq.astype(np.float64) - sum_sq
    fn = sum_a_sq.astype(np.float64) - sum_sq
    tn = n * n - fp - fn - sum_sq
    num = 2.0 * (tp * tn - fn * fp)
    den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    perfect = (fn == 0) & (fp == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ari = np.where(perfect, 1.0, num / np.where(den == 0, 1.0, den))
    return ari


def _check_lengths(**arrays: np.ndarray | None) -> int:
    sizes = {k: np.asarray(v).shape[0] for k, v in arrays.items() if v is not None}
    n = next(iter(sizes.values()))
    for name, size in sizes.items():
        if size != n:
            raise ValueError(f"tracking_metrics: {name} has {size} entries, expected {n} (one per point)")
    return n


def _track_kinematics_ok(
    t_inv: np.ndarray, n_true: int, pt: np.ndarray | None, eta: np.ndarray | None, selection: str
) -> np.ndarray:
    """Per true track: passes the kinematic part of the selection (all True without a selection)."""
    ok = np.ones(n_true, dtype=bool)
    if selection == "none":
        return ok
    if pt is None or eta is None:
        raise ValueError(
            f"tracking_metrics: selection={selection!r} needs truth pt and eta per point; "
            "pass pt=/eta= or use selection='none'"
        )
    first = np.full(n_true, -1, dtype=np.int64)
    first[t_inv[::-1]] = np.arange(t_inv.shape[0] - 1, -1, -1)  # first point of each true track
    ok &= np.asarray(pt)[first] > SPHENIX_SELECTION["pt_min_gev"]
    ok &= np.abs(np.asarray(eta)[first]) < SPHENIX_SELECTION["abs_eta_max"]
    return ok


def _binned_efficiency(values: np.ndarray, matched: np.ndarray, edges: np.ndarray) -> dict[str, list[float]]:
    idx = np.digitize(values, edges) - 1
    inside = (idx >= 0) & (idx < len(edges) - 1)
    total = np.bincount(idx[inside], minlength=len(edges) - 1)
    hit = np.bincount(idx[inside], weights=matched[inside].astype(float), minlength=len(edges) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where(total > 0, hit / np.maximum(total, 1), np.nan)
    return {"edges": edges.tolist(), "efficiency": eff.tolist(), "n_true": total.tolist()}


def tracking_metrics(
    event_id: np.ndarray,
    true_track: np.ndarray,
    pred_track: np.ndarray,
    *,
    min_points: int = 1,
    selection: str = "none",
    pt: np.ndarray | None = None,
    eta: np.ndarray | None = None,
    pt_edges: np.ndarray | None = None,
    eta_edges: np.ndarray | None = None,
) -> dict[str, Any]:
    """Score a track-finding result: see the module docstring for every definition.

    `event_id`, `true_track`, `pred_track` (and truth `pt`, `eta` of each point's particle, if known) are (n,)
    arrays over all points of all events. `selection="sphenix"` applies >= 20 points, pT > 1 GeV, |eta| < 1.1.
    Efficiency is also binned in pT and eta when truth is given (`pt_edges`/`eta_edges` or defaults).
    """
    if selection not in ("none", "sphenix"):
        raise ValueError(f"tracking_metrics: selection must be 'none' or 'sphenix', got {selection!r}")
    _check_lengths(event_id=event_id, true_track=true_track, pred_track=pred_track, pt=pt, eta=eta)
    if selection == "sphenix":
        min_points = max(min_points, SPHENIX_SELECTION["min_points"])
    keep = np.asarray(true_track) >= 0
    ev = np.asarray(event_id)[keep]
    pt = None if pt is None else np.asarray(pt, dtype=np.float64)[keep]
    eta = None if eta is None else np.asarray(eta, dtype=np.float64)[keep]
    n_events_all = np.unique(np.asarray(event_id)).shape[0]
    t_inv, t_event = _dense_pair_ids(ev, np.asarray(true_track)[keep])
    p_inv, p_event = _dense_pair_ids(ev, np.asarray(pred_track)[keep])
    n_true, n_pred = t_event.shape[0], p_event.shape[0]

    # Contingency table as its non-zero cells: (true track, predicted track, count).
    cell, cell_n = np.unique(t_inv * np.int64(max(n_pred, 1)) + p_inv, return_counts=True)
    c_true, c_pred = cell // max(n_pred, 1), cell % max(n_pred, 1)
    a = np.bincount(t_inv, minlength=n_true)  # points per true track
    b = np.bincount(p_inv, minlength=n_pred)  # points per predicted track

    pooled = _ari_from_sums(np.array(ev.shape[0]), np.sum(cell_n**2), np.sum(a**2), np.sum(b**2))
    _, ev_dense = np.unique(ev, return_inverse=True)
    n_ev = int(ev_dense.max()) + 1 if ev.size else 0
    _, t_ev_dense = np.unique(t_event, return_inverse=True)
    _, p_ev_dense = np.unique(p_event, return_inverse=True)
    per_event = _ari_from_sums(
        np.bincount(ev_dense, minlength=n_ev),
        np.bincount(t_ev_dense[c_true], weights=cell_n.astype(float) ** 2, minlength=n_ev),
        np.bincount(t_ev_dense, weights=a.astype(float) ** 2, minlength=n_ev),
        np.bincount(p_ev_dense, weights=b.astype(float) ** 2, minlength=n_ev),
    )

    # Double majority: a cell matches when it holds > 50 % of both its true and its predicted track.
    is_match = (2 * cell_n > a[c_true]) & (2 * cell_n > b[c_pred])
    true_matched = np.zeros(n_true, dtype=bool)
    true_matched[c_true[is_match]] = True
    pred_matched = np.zeros(n_pred, dtype=bool)
    pred_matched[c_pred[is_match]] = True
    eligible = (a >= min_points) & _track_kinematics_ok(t_inv, n_true, pt, eta, selection)
    pred_counted = b >= min_points

    out: dict[str, Any] = {
        "ari_pooled": float(pooled) if ev.size else float("nan"),
        "ari_event_mean": float(per_event.mean()) if n_ev else float("nan"),
        "efficiency": _ratio(true_matched[eligible].sum(), eligible.sum()),
        "purity": _ratio(pred_matched[pred_counted].sum(), pred_counted.sum()),
        "n_events": int(n_events_all),
        "n_events_without_tracks": int(n_events_all - n_ev),
        "n_points": int(ev.shape[0]),
        "n_true_tracks": int(n_true),
        "n_true_eligible": int(eligible.sum()),
        "n_true_excluded": int(n_true - eligible.sum()),
        "n_true_matched": int(true_matched[eligible].sum()),
        "n_pred_tracks": int(pred_counted.sum()),
        "n_pred_matched": int(pred_matched[pred_counted].sum()),
        # per event with at least one true track: a collapsed finder predicts ~1 whatever the truth holds
        "pred_tracks_per_event": _ratio(pred_counted.sum(), n_ev),
        "true_tracks_per_event": _ratio(eligible.sum(), n_ev),
        "min_points": int(min_points),
        "selection": selection,
    }
    if pt is not None and eta is not None and n_true:
        first = np.full(n_true, -1, dtype=np.int64)
        first[t_inv[::-1]] = np.arange(t_inv.shape[0] - 1, -1, -1)
        sel = a >= min_points
        pt_e = np.asarray(pt_edges if pt_edges is not None else [0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 50.0])
        eta_e = np.asarray(eta_edges if eta_edges is not None else np.linspace(-1.1, 1.1, 12))
        out["efficiency_vs_pt"] = _binned_efficiency(pt[first][sel], true_matched[sel], pt_e)
        out["efficiency_vs_eta"] = _binned_efficiency(eta[first][sel], true_matched[sel], eta_e)
    return out


def _ratio(num: int | np.integer, den: int | np.integer) -> float:
    return float(num) / float(den) if den else float("nan")


def assignment_rand_index(true_track: np.ndarray, pred_track: np.ndarray) -> float:
    """ARI of one event (points with true track < 0 dropped): a convenience over `tracking_metrics`."""
    zeros = np.zeros(np.asarray(true_track).shape[0], dtype=np.int64)
    return tracking_metrics(zeros, true_track, pred_track)["ari_pooled"]


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro precision/recall, per-class precision/recall/support and the confusion matrix.

    Classes run 0..n_classes-1 (default: from `class_names`, else max label + 1). `confusion[i][j]` counts
    points of true class i predicted as j (scikit-learn's layout). A class never predicted has precision 0 and
    one never present has recall 0 (scikit-learn's `zero_division=0`); macro averages run over all classes.
    """
    y_true, y_pred = np.asarray(y_true).astype(np.int64), np.asarray(y_pred).astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"classification_metrics: y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape"
        )
    if n_classes is None:
        n_classes = (
            len(class_names) if class_names else int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
        )
    names = class_names or tuple(str(i) for i in range(n_classes))
    if len(names) != n_classes:
        raise ValueError(f"classification_metrics: {len(names)} class names for {n_classes} classes")
    for label, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"classification_metrics: {label} has labels outside 0..{n_classes - 1}")
    conf = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    conf = conf.reshape(n_classes, n_classes)
    tp = np.diag(conf).astype(np.float64)
    pred_tot, true_tot = conf.sum(axis=0), conf.sum(axis=1)
    precision = np.where(pred_tot > 0, tp / np.maximum(pred_tot, 1), 0.0)
    recall = np.where(true_tot > 0, tp / np.maximum(true_tot, 1), 0.0)
    return {
        "accuracy": _ratio(int(tp.sum()), int(y_true.size)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "support": int(s)}
            for name, p, r, s in zip(names, precision, recall, true_tot, strict=True)
        },
        "confusion": conf.tolist(),
        "class_names": list(names),
        "n_points": int(y_true.size),
    }
