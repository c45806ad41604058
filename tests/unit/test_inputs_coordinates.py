"""Coordinates and normalisation from manifest statistics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from scaling.inputs.coordinates import Normalizer, to_cylindrical


def test_cylindrical_matches_the_definitions() -> None:
    pts = np.array([[1.0, 3.0, 4.0, 10.0], [2.0, -1.0, 0.0, -5.0], [3.0, 0.0, -2.0, 0.0]])
    cyl = to_cylindrical(pts)
    r = np.hypot(pts[:, 1], pts[:, 2])
    theta = np.arctan2(r, pts[:, 3])
    np.testing.assert_allclose(cyl[:, 0], pts[:, 0])
    np.testing.assert_allclose(cyl[:, 1], r)
    np.testing.assert_allclose(cyl[:, 2], np.arctan2(pts[:, 2], pts[:, 1]))
    np.testing.assert_allclose(cyl[:, 3], -np.log(np.tan(theta / 2)), atol=1e-12)


def test_features_are_normalised_with_the_manifest_ranges(
    tpc_stats: dict, tpc_points: Callable[..., np.ndarray]
) -> None:
    norm = Normalizer.from_stats(tpc_stats)
    pts = tpc_points(np.random.default_rng(2), 300)
    f = norm.features(pts)
    assert f.dtype == np.float32 and f.shape == (300, 4)
    assert f[:, 1:].min() >= 0.0 and f[:, 1:].max() <= 1.0
    cyl = to_cylindrical(pts)
    np.testing.assert_allclose(
        f[:, 0], (cyl[:, 0] - tpc_stats["energy_mean"]) / tpc_stats["energy_std"], rtol=1e-5
    )
    r01 = (cyl[:, 1] - tpc_stats["r_min"]) / (tpc_stats["r_max"] - tpc_stats["r_min"])
    np.testing.assert_allclose(f[:, 1], np.clip(r01, 0, 1), atol=1e-6)
    # A different manifest gives different features: nothing is hard-coded.
    other = dict(tpc_stats, r_min=tpc_stats["r_min"] - 10.0, energy_mean=0.0)
    g = Normalizer.from_stats(other).features(pts)
    assert not np.allclose(f[:, 1], g[:, 1]) and not np.allclose(f[:, 0], g[:, 0])


def test_eta_is_clipped_to_the_range(tpc_stats: dict) -> None:
    norm = Normalizer.from_stats(dict(tpc_stats, eta_min=-0.5, eta_max=0.5))
    pts = np.array([[1.0, 30.0, 0.0, 200.0], [1.0, 30.0, 0.0, -200.0], [1.0, 30.0, 0.0, 0.0]])
    eta01 = norm.features(pts)[:, 3]
    np.testing.assert_allclose(eta01, [1.0, 0.0, 0.5], atol=1e-6)


def test_missing_or_degenerate_stats_name_the_key(tpc_stats: dict) -> None:
    bad = {k: v for k, v in tpc_stats.items() if k != "r_max"}
    with pytest.raises(ValueError, match="r_max"):
        Normalizer.from_stats(bad)
    with pytest.raises(ValueError, match="eta_max"):
        Normalizer.from_stats(dict(tpc_stats, eta_max=tpc_stats["eta_min"]))
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        to_cylindrical(np.zeros((3, 3)))
