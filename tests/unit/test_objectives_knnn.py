"""k-NNN targets against the O(n^2) reference, edge cases, loss and difficulty rescaling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scaling.inputs.pipeline import Sample, pack_samples
from scaling.objectives import ObjectiveConfig, build_objective, knnn_brute_force, knnn_neighbours
from scaling.objectives.knnn import knnn_indices_torch


def _feats(pos: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((pos.shape[0], 1)), pos], axis=1).astype(np.float32)


def _sample(obj, pos: np.ndarray, event_id: int = 0) -> Sample:
    f = _feats(pos)
    t = obj.build_targets(f)
    return Sample(features=f, targets=t, perm=np.arange(len(f)), event_id=event_id, weight=1.0)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 400])
@pytest.mark.parametrize("k", [1, 5, 30])
def test_matches_brute_force_on_random_events(n: int, k: int) -> None:
    pos = np.random.default_rng(n * 100 + k).random((n, 3))
    idx, dist = knnn_neighbours(pos, k)
    ref_idx, ref_dist = knnn_brute_force(pos, k)
    assert idx.shape == (n, k)
    assert np.array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist)


def _tracks(rng: np.random.Generator, n_tracks: int) -> np.ndarray:
    """TPC-like clustered points: tracks over 48 layers (equal r per layer) plus uniform noise."""
    layers = np.linspace(0.0, 1.0, 48)
    pts = [rng.random((n_tracks * 4, 3))]
    for _ in range(n_tracks):
        phi0, eta = rng.random(2)
        r = layers[: rng.integers(5, 49)]
        pts.append(np.stack([r, (phi0 + 0.05 * rng.normal() * r) % 1.0, np.full(r.size, eta)], 1))
    return np.concatenate(pts)


@pytest.mark.parametrize(
    "case",
    ["tracks", "dense_and_sparse", "phi_seam", "phi_edges_exact", "flat_eta", "few_radii", "duplicates"],
)
@pytest.mark.parametrize("k", [1, 30])
def test_cell_search_matches_brute_force_on_hard_layouts(case: str, k: int) -> None:
    rng = np.random.default_rng(sum(map(ord, case)))
    if case == "tracks":
        pos = _tracks(rng, 40)
    elif case == "dense_and_sparse":  # one tight cluster inside a sparse event: rounds with growing cells
        pos = np.concatenate([rng.random((300, 3)), 0.5 + 0.01 * rng.random((500, 3))])
    elif case == "phi_seam":  # points hugging phi = 0 and phi = 1, neighbours across the seam
        pos = rng.random((600, 3))
        pos[:, 1] = np.where(rng.random(600) < 0.5, 0.02 * pos[:, 1], 1.0 - 0.02 * pos[:, 1])
    elif case == "phi_edges_exact":  # clipped features: phi exactly 0.0 and 1.0
        pos = rng.random((500, 3))
        pos[::3, 1] = 0.0
        pos[1::3, 1] = 1.0
    elif case == "flat_eta":  # every point at one eta
        pos = rng.random((400, 3))
        pos[:, 2] = 0.3
    elif case == "few_radii":  # 3 radii only: most points have equal-r peers, which never count
        pos = rng.random((400, 3))
        pos[:, 0] = rng.integers(0, 3, 400) / 2
    else:  # exact duplicates: equal distances everywhere
        pos = np.repeat(np.floor(rng.random((100, 3)) * 8) / 8, 4, axis=0)
    idx, dist = knnn_neighbours(pos, k)
    ref, ref_dist = knnn_brute_force(pos, k)
    assert np.array_equal(idx, ref)
    np.testing.assert_allclose(dist, ref_dist)


def test_ties_break_like_the_reference() -> None:
    # A coarse grid: many exactly equal distances and equal radii.
    pos = np.floor(np.random.default_rng(0).random((300, 3)) * 4) / 4
    idx, _ = knnn_neighbours(pos, 30)
    ref, _ = knnn_brute_force(pos, 30)
    assert np.array_equal(idx, ref)


def test_neighbours_have_larger_r_and_come_sorted_by_distance() -> None:
    pos = np.random.default_rng(1).random((500, 3))
    idx, dist = knnn_neighbours(pos, 30)
    ok = idx >= 0
    rows = np.nonzero(ok)[0]
    assert np.all(pos[idx[ok], 0] > pos[rows, 0])
    assert np.all(np.diff(np.where(ok, dist, 1e9), axis=1) >= 0)  # masked slots come last
    # fewer than k larger-r points: exactly that many neighbours, the rest masked
    n_larger = (pos[None, :, 0] > pos[:, None, 0]).sum(axis=1)
    assert np.array_equal(ok.sum(axis=1), np.minimum(n_larger, 30))


def test_phi_is_periodic() -> None:
    pos = np.array([[0.1, 0.99, 0.5], [0.2, 0.01, 0.5], [0.2, 0.5, 0.5]])
    idx, dist = knnn_neighbours(pos, 2)
    assert idx[0].tolist() == [1, 2]
    assert dist[0, 0] == pytest.approx(np.hypot(0.1, 0.02))
    t = build_objective(ObjectiveConfig(k=2)).build_targets(_feats(pos))["target"]
    np.testing.assert_allclose(t[0, :3], [0.1, 0.02, 0.0], atol=1e-6)  # wrapped offset, not -0.98


def test_targets_are_offsets_or_absolute() -> None:
    pos = np.random.default_rng(2).random((50, 3))
    rel = build_objective(ObjectiveConfig(k=4)).build_targets(_feats(pos))
    ab = build_objective(ObjectiveConfig(k=4, relative_targets=False)).build_targets(_feats(pos))
    idx, _ = knnn_brute_force(pos, 4)
    m = rel["mask"]
    assert np.array_equal(m, idx >= 0) and rel["target"].shape == (50, 12)
    got_abs = ab["target"].reshape(50, 4, 3)[m]
    np.testing.assert_allclose(got_abs, pos[idx[m]], atol=1e-6)
    off = rel["target"].reshape(50, 4, 3)
    assert np.all(off[~m] == 0) and np.all(np.abs(off[..., 1]) <= 0.5)


def test_all_points_at_one_radius_give_a_zero_not_nan_loss() -> None:
    obj = build_objective(ObjectiveConfig(k=30))
    pos = np.random.default_rng(3).random((40, 3))
    pos[:, 0] = 0.5
    s = _sample(obj, pos)
    assert not s.targets["mask"].any() and float(s.targets["difficulty"]) == 0.0
    batch = pack_samples([s])
    pred = torch.randn(1, 40, obj.out_dim, requires_grad=True)
    loss = obj.loss(pred, batch)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()


def test_loss_is_masked_weighted_and_differentiable() -> None:
    obj = build_objective(ObjectiveConfig(k=5))
    rng = np.random.default_rng(4)
    samples = [_sample(obj, rng.random((n, 3)), event_id=i) for i, n in enumerate([30, 7, 1])]
    batch = pack_samples(samples)
    target = batch.targets["target"]
    assert obj.loss(target.clone(), batch).item() == pytest.approx(0.0, abs=1e-12)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    loss = obj.loss(pred, batch)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(pred.grad).all()
    # masked slots do not matter
    masked = ~batch.targets["mask"].repeat_interleave(3, dim=1)
    moved = pred.detach().clone()
    moved[masked] += 100.0
    assert obj.loss(moved, batch).item() == pytest.approx(loss.item(), rel=1e-6)
    # per-event MSE by hand, mean over events that have targets (the 1-point event has none)
    per_event = []
    for e in range(2):
        sel = batch.seq_idx[0] == e
        m = masked[sel]
        err = (pred.detach()[sel] - target[sel]) ** 2
        per_event.append(float(err[~m].mean()))
    assert loss.item() == pytest.approx(np.mean(per_event), rel=1e-5)
    batch.weights = torch.tensor([3.0, 1.0, 1.0])
    assert obj.loss(pred.detach(), batch).item() == pytest.approx(
        (3 * per_event[0] + per_event[1]) / 2, rel=1e-5
    )
    with pytest.raises(ValueError, match="expected"):
        obj.loss(pred.detach()[:, :3], batch)


def test_difficulty_fit_weights_and_switch() -> None:
    obj = build_objective(ObjectiveConfig(k=5, difficulty_bins=4))
    rng = np.random.default_rng(5)
    # sparse events (few points) are harder: larger neighbour distances
    samples = [_sample(obj, rng.random((int(n), 3))) for n in rng.integers(20, 400, 40)]
    table = obj.fit_difficulty(samples)
    table = json.loads(json.dumps(table))  # JSON-able
    w = np.asarray(table["weights"])
    assert len(table["edges"]) == 5 and np.all(np.diff(w) < 0)  # harder bins weigh less
    weights = [obj.event_weight(s.targets) for s in samples]
    assert np.mean(weights) == pytest.approx(1.0, rel=1e-6)
    other = build_objective(ObjectiveConfig(k=5, difficulty_rescaling=False))
    other.load_difficulty(table)
    assert all(other.event_weight(s.targets) == 1.0 for s in samples)
    with pytest.raises(ValueError, match="difficulty_bins"):
        build_objective(ObjectiveConfig(k=5, difficulty_bins=50)).fit_difficulty(samples)
    with pytest.raises(ValueError, match="weights"):
        obj.load_difficulty({"edges": [0, 1]})


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="objective.name.*'masked'.*knnn"):
        ObjectiveConfig(name="masked")
    with pytest.raises(ValueError, match="objective.k"):
        ObjectiveConfig(k=0)
    assert build_objective(ObjectiveConfig()).out_dim == 90


@pytest.mark.parametrize("n", [0, 1, 2, 20, 300])
def test_torch_backend_matches_the_reference(n: int) -> None:
    pos = np.random.default_rng(n + 11).random((n, 3))
    got = knnn_indices_torch(torch.from_numpy(pos), 30, block=64).numpy()
    assert np.array_equal(got, knnn_brute_force(pos, 30)[0])
    tree = build_objective(ObjectiveConfig(k=30)).build_targets(_feats(pos))
    dense = build_objective(ObjectiveConfig(k=30, target_backend="torch")).build_targets(_feats(pos))
    np.testing.assert_array_equal(tree["mask"], dense["mask"])
    np.testing.assert_allclose(tree["target"], dense["target"])
    with pytest.raises(ValueError, match="objective.target_backend"):
        ObjectiveConfig(target_backend="faiss")


def test_dense_cluster_and_outer_points_search_exactly_and_fast_enough() -> None:
    """A cluster far denser than the event (the grid's quadratic case) and points with fewer than k larger-r
    points (searched everywhere at once) still match the reference, in bounded time."""
    import time

    rng = np.random.default_rng(9)
    pos = np.concatenate([_tracks(rng, 30), 0.4 + 0.002 * rng.random((3000, 3))])
    t0 = time.process_time()
    idx, _ = knnn_neighbours(pos, 30)
    assert time.process_time() - t0 < 20.0  # ~0.1 s; seconds would mean the cluster went quadratic per round
    assert np.array_equal(idx, knnn_brute_force(pos, 30)[0])
    assert (idx[np.argmax(pos[:, 0])] == -1).all()


@pytest.mark.parametrize(
    ("bad", "message"),
    [(np.nan, "point 3 has a non-finite coordinate"), (1.5, "phi must be normalised to")],
)
def test_bad_positions_are_named(bad: float, message: str) -> None:
    pos = np.random.default_rng(0).random((10, 3))
    pos[3, 1] = bad
    with pytest.raises(ValueError, match=message):
        knnn_neighbours(pos, 5)


def _select_k(bd: np.ndarray, bj: np.ndarray, k: int, h2: float) -> tuple[np.ndarray, np.ndarray]:
    from scaling.objectives.neighbours import _select

    c = len(bd)
    od, oj = np.empty(c + 2), np.empty(c + 2, dtype=np.int64)
    cnt, bucket = np.empty(c + 2, dtype=np.int64), np.empty(c + 1, dtype=np.int64)
    m = _select(bd.copy(), bj.copy(), c, k, h2, cnt, bucket, od, oj)
    return od[:m], oj[:m]


def _ranked(bd: np.ndarray, bj: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(bd)
    o = np.lexsort((bj, d))[:k]
    return d[o], bj[o]


def test_selection_ranks_by_distance_then_index_across_bucket_edges() -> None:
    """The counting-sort selection ranks candidates by (sqrt(d^2), index). Two squared distances one ulp apart
    with the same square root can fall on either side of a bucket edge (64 buckets over [0, 1] here, edge at
    31/64): the later-bucket one has the smaller index and must still win the k-th place."""
    k, x = 30, 31 / 64
    below = np.nextafter(x, 0.0)
    assert np.sqrt(below) == np.sqrt(x)  # one distance, two squared distances
    bd = np.concatenate([0.01 + 1e-4 * np.arange(k - 1), [x, below], np.linspace(0.6, 1.0, 33)])
    bj = np.concatenate([np.arange(2, k + 1), [0, 1], np.arange(k + 1, k + 34)])
    d, j = _select_k(bd, bj, k, 1.0)
    assert j[-1] == 0
    ref_d, ref_j = _ranked(bd, bj, k)
    assert np.array_equal(j, ref_j) and np.array_equal(d, ref_d)


@pytest.mark.parametrize("seed", range(40))
def test_selection_matches_a_full_sort(seed: int) -> None:
    """Random candidate sets: few distinct values (crowded buckets), ulp neighbours, fewer than k."""
    rng = np.random.default_rng(seed)
    c, k = int(rng.integers(1, 400)), int(rng.choice([1, 3, 30, 200]))
    base = rng.random(int(rng.integers(1, 50)))
    bd = rng.choice(np.concatenate([base, np.nextafter(base, 0.0), np.nextafter(base, 2.0)]), c)
    bj = rng.permutation(10 * c)[:c].astype(np.int64)
    d, j = _select_k(bd, bj, k, float(bd.max()) * (1.0 + 1e-12))
    ref_d, ref_j = _ranked(bd, bj, k)
    assert np.array_equal(j, ref_j) and np.array_equal(d, ref_d)
