"""Scaling-law fits on synthetic data with known parameters: recovery, coverage, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.fit import fit_joint_law, fit_single_law

TRUE = {"A": 400.0, "alpha": 0.3, "E": 1.5}


def _single(
    n: int, noise: float, rng: np.random.Generator, with_e: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    x = np.geomspace(1e5, 1e9, n)
    y = TRUE["A"] * x ** -TRUE["alpha"] + (TRUE["E"] if with_e else 0.0)
    return x, y * np.exp(rng.normal(0.0, noise, n))


def _names(n: int) -> list[str]:
    return [f"r{i}" for i in range(n)]


@pytest.mark.parametrize("irreducible", ["yes", "auto"])
def test_single_law_recovers_parameters_at_low_noise(irreducible: str) -> None:
    x, y = _single(10, 1e-4, np.random.default_rng(0))
    fit = fit_single_law(
        "model", _names(10), x, y, x_name="params", loss_name="loss", irreducible=irreducible, n_boot=50
    )
    assert fit.converged and fit.reliable and fit.irreducible
    for name, true in TRUE.items():
        assert abs(fit.params[name] / true - 1) < 0.02, (name, fit.params[name])
        lo, hi = fit.ci95[name]
        assert lo <= fit.params[name] <= hi
    assert fit.r2_log > 0.999 and fit.rms_log_residual < 1e-3


def test_pure_power_law_leaves_out_irreducible_term() -> None:
    x, y = _single(8, 1e-3, np.random.default_rng(1), with_e=False)
    fit = fit_single_law("data", _names(8), x, y, x_name="tokens", loss_name="loss", n_boot=100)
    assert not fit.irreducible and "E" not in fit.params
    assert abs(fit.params["alpha"] / TRUE["alpha"] - 1) < 0.02


@pytest.mark.parametrize("irreducible", ["yes", "no"])
def test_single_law_intervals_cover_truth(irreducible: str) -> None:
    """40 draws x 200 resamples: the 95 % intervals must cover the truth in >= 90 % of draws."""
    rng = np.random.default_rng(7)
    with_e = irreducible == "yes"
    hits = {name: 0 for name in (TRUE if with_e else ("A", "alpha"))}
    for draw in range(40):
        x, y = _single(10, 0.01, rng, with_e=with_e)
        fit = fit_single_law(
            "model",
            _names(10),
            x,
            y,
            x_name="p",
            loss_name="l",
            irreducible=irreducible,
            n_boot=200,
            seed=draw,
        )
        for name in hits:
            lo, hi = fit.ci95[name]
            hits[name] += lo <= TRUE[name] <= hi
    assert all(h >= 36 for h in hits.values()), hits


JOINT = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _joint(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_params = np.exp(rng.uniform(np.log(1e6), np.log(1e10), n))
    tokens = np.exp(rng.uniform(np.log(1e8), np.log(1e12), n))
    loss = JOINT["E"] + JOINT["A"] / n_params ** JOINT["alpha"] + JOINT["B"] / tokens ** JOINT["beta"]
    return n_params, tokens, loss * np.exp(rng.normal(0.0, noise, n))


def test_joint_law_recovers_exponents_and_compute_optimal_allocation() -> None:
    n, d, y = _joint(120, 1e-4, np.random.default_rng(3))
    fit = fit_joint_law(_names(120), n, d, y, loss_name="loss", n_boot=20)
    assert fit.reliable, fit.at_bound
    assert set(fit.params) == set(JOINT)
    for name in ("alpha", "beta", "E"):
        assert abs(fit.params[name] / JOINT[name] - 1) < 0.02, (name, fit.params[name])
    a_true = JOINT["beta"] / (JOINT["alpha"] + JOINT["beta"])
    assert fit.derived["a"] == pytest.approx(a_true, rel=0.02)
    assert fit.derived["a"] + fit.derived["b"] == pytest.approx(1.0)
    assert fit.ci95["alpha"][0] <= fit.params["alpha"] <= fit.ci95["alpha"][1]


@pytest.mark.slow
def test_joint_law_intervals_cover_truth() -> None:
    rng = np.random.default_rng(11)
    hits = {"alpha": 0, "beta": 0}
    for draw in range(20):
        n, d, y = _joint(40, 0.01, rng)
        fit = fit_joint_law(_names(40), n, d, y, loss_name="loss", n_boot=100, seed=draw)
        for name in hits:
            lo, hi = fit.ci95[name]
            hits[name] += lo <= JOINT[name] <= hi
    assert all(h >= 18 for h in hits.values()), hits


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1e5, 1e6], [3.0, 2.0], "need at least 3"),
        ([1e5, 1e6, 1e7, 1e8], [2.0, 2.0, 2.0, 2.0], "loss is constant"),
        ([1e5, np.nan, 1e7, 1e8], [3.0, 2.5, 2.2, 2.0], "'r1': params is nan"),
        ([1e5, 1e6, 1e7, 1e8], [3.0, 2.5, -2.2, 2.0], "'r2': loss = -2.2 is not positive"),
        ([1e5, 1e6, 0.0, 1e8], [3.0, 2.5, 2.2, 2.0], "'r2': params = 0.0 is not positive"),
    ],
)
def test_degenerate_inputs_give_a_clear_error(x: list[float], y: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_single_law(
            "model", _names(len(x)), np.array(x), np.array(y), x_name="params", loss_name="loss", n_boot=10
        )


def test_joint_law_needs_six_points() -> None:
    n, d, y = _joint(5, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"5 \(N, D\) point.*5 parameters.*budget.checkpoint_fractions"):
        fit_joint_law(_names(5), n, d, y, loss_name="loss", n_boot=0)
