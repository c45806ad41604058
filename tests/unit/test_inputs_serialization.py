"""Serialisation orders: permutations, raster boxes, the Hilbert curve."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from scaling.inputs.coordinates import Normalizer
from scaling.inputs.hilbert import hilbert_index
from scaling.inputs.serialization import SERIALIZATIONS, raster_boxes, raster_edges, serialize


@pytest.fixture(scope="module")
def feats(tpc_stats: dict, tpc_points: Callable[..., np.ndarray]) -> np.ndarray:
    return Normalizer.from_stats(tpc_stats).features(tpc_points(np.random.default_rng(4), 2000))


@pytest.mark.parametrize("order", SERIALIZATIONS)
@pytest.mark.parametrize("n", [0, 1, 2, 2000])
def test_every_order_is_a_permutation(order: str, n: int, feats: np.ndarray, tpc_stats: dict) -> None:
    perm = serialize(feats[:n], order, tpc_stats, rng=np.random.default_rng(0))
    assert perm.dtype == np.int64
    assert np.array_equal(np.sort(perm), np.arange(n))


def test_raster_boxes_are_contiguous_ordered_and_sorted_by_r(feats: np.ndarray, tpc_stats: dict) -> None:
    perm = serialize(feats, "raster", tpc_stats)
    box = raster_boxes(feats, tpc_stats)[perm]
    r = feats[perm, 1]
    assert np.all(np.diff(box) >= 0)  # each box one run, boxes in visiting order
    assert np.unique(box).size > 100  # the 6 x 8 x 8 grid is actually populated
    r_bin, rest = np.divmod(box, 64)
    phi_bin, eta_bin = np.divmod(rest, 8)
    assert np.all(np.diff(r_bin) >= 0)  # box order monotone in r (outermost loop)
    same_r = np.diff(r_bin) == 0
    assert np.all(np.diff(phi_bin)[same_r] >= 0)  # then phi
    inside = np.diff(box) == 0
    assert np.all(np.diff(r)[inside] >= 0)  # points inside a box by r
    # r bins follow the manifest's r edges (normalised with the same ranges as the features)
    r_edges, _, _ = raster_edges(tpc_stats)
    assert r_edges.size == len(tpc_stats["r_edges"]) == 7
    for b in range(6):
        rb = r[r_bin == b]
        assert rb.size and rb.min() >= r_edges[b] - 1e-6 and rb.max() <= r_edges[b + 1] + 1e-6


def test_frequency_balanced_eta_phi_bins(tpc_stats: dict, tpc_points: Callable[..., np.ndarray]) -> None:
    many = Normalizer.from_stats(tpc_stats).features(tpc_points(np.random.default_rng(5), 20000))
    box = raster_boxes(many, tpc_stats)
    counts = np.bincount((box % 64) // 8, minlength=8)  # phi bins
    assert counts.min() > 0.7 * counts.mean()
    counts = np.bincount(box % 8, minlength=8)  # eta bins (eta is not uniform: quantile edges balance it)
    assert counts.min() > 0.7 * counts.mean()


def test_hilbert_index_is_a_bijection_with_unit_steps() -> None:
    bits = 3
    grid = np.stack(np.meshgrid(*[np.arange(8)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    h = hilbert_index(grid, bits)
    assert np.array_equal(np.sort(h), np.arange(512))
    walk = grid[np.argsort(h)]
    assert np.all(np.abs(np.diff(walk, axis=0)).sum(axis=1) == 1)  # neighbours on the curve touch


def test_hilbert_order_is_local(feats: np.ndarray, tpc_stats: dict) -> None:
    pos = feats[:, 1:]

    def mean_step(perm: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(pos[perm], axis=0), axis=1).mean())

    h = mean_step(serialize(feats, "hilbert", tpc_stats))
    rnd = mean_step(serialize(feats, "random", tpc_stats, rng=np.random.default_rng(0)))
    assert h < 0.25 * rnd


def test_bad_names_and_random_without_rng(feats: np.ndarray, tpc_stats: dict) -> None:
    with pytest.raises(ValueError, match="unknown order 'zigzag'.*raster"):
        serialize(feats, "zigzag", tpc_stats)
    with pytest.raises(ValueError, match="needs an rng"):
        serialize(feats, "random", tpc_stats)
    a = serialize(feats, "random", tpc_stats, rng=np.random.default_rng(7))
    b = serialize(feats, "random", tpc_stats, rng=np.random.default_rng(7))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="phi_edges"):
        serialize(feats, "raster", {k: v for k, v in tpc_stats.items() if k != "phi_edges"})
