"""Fixtures shared by unit tests: TPC-shaped spacepoints and the manifest statistics computed from them."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from scaling.data.stats import StatsAccumulator


def make_tpc_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) float32 [E, x, y, z]: r uniform over the TPC (30-78 cm), phi uniform, z ~ N(0, 50 cm),
    exponential energies; the shape the normaliser and the serialisation see in the real data."""
    r = rng.uniform(30.0, 78.0, n)
    phi = rng.uniform(-math.pi, math.pi, n)
    z = rng.normal(0.0, 50.0, n)
    e = rng.exponential(250.0, n)
    return np.stack([e, r * np.cos(phi), r * np.sin(phi), z], axis=1).astype(np.float32)


@pytest.fixture(scope="session")
def tpc_points() -> Callable[[np.random.Generator, int], np.ndarray]:
    """The generator `make_tpc_points`, for tests that need fresh points."""
    return make_tpc_points


@pytest.fixture(scope="session")
def tpc_stats() -> dict:
    """Manifest stats (ranges, raster bin edges) of 5 x 500 TPC-shaped points."""
    rng = np.random.default_rng(3)
    acc = StatsAccumulator(sample_points=5000)
    for _ in range(5):
        acc.add(make_tpc_points(rng, 500))
    return acc.finish()
