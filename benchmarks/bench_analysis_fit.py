"""Benchmark of the scaling-law fits: joint-law bootstrap time, exponent recovery, interval coverage.

    .venv/bin/python benchmarks/bench_analysis_fit.py          # quick (< 60 s)
    .venv/bin/python benchmarks/bench_analysis_fit.py --full   # more coverage draws

Timed: a joint fit L(N, D) = E + A/N^α + B/D^β with 1000 bootstrap resamples on 200 points (each resample
warm-started from the point estimate). Reference measured in the same run: the naive bootstrap, which repeats
the full grid-of-starts fit on every resample (timed on a few resamples, reported per resample), and the
single point fit. Printed ratio: naive time per resample / our time per resample.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # standalone: the repo root, not an install

import numpy as np  # noqa: E402

from analysis import laws  # noqa: E402
from analysis.bootstrap import resample_weights  # noqa: E402
from analysis.fit import fit_joint_law, fit_single_law  # noqa: E402
from tests.synthetic import TrueLaw  # noqa: E402

SINGLE = {"A": 400.0, "alpha": 0.3, "E": 1.5}


def joint_points(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    law = TrueLaw()
    big_n = np.exp(rng.uniform(np.log(1e6), np.log(1e10), n))
    big_d = np.exp(rng.uniform(np.log(1e8), np.log(1e12), n))
    return big_n, big_d, law.loss(big_n, big_d) * np.exp(rng.normal(0.0, noise, n))


def time_joint(n_points: int, n_boot: int, n_naive: int) -> None:
    big_n, big_d, y = joint_points(n_points, 0.01, np.random.default_rng(0))
    names = [f"r{i}" for i in range(n_points)]
    start = time.perf_counter()
    fit_joint_law(names, big_n, big_d, y, loss_name="loss", n_boot=0)
    t_point = time.perf_counter() - start
    start = time.perf_counter()
    fit = fit_joint_law(names, big_n, big_d, y, loss_name="loss", n_boot=n_boot, seed=1)
    t_boot = time.perf_counter() - start - t_point
    ln, ld, ll = np.log(big_n), np.log(big_d), np.log(y)
    w = resample_weights(n_points, n_naive, seed=2, min_distinct=6)
    start = time.perf_counter()
    laws.fit_joint_batch(ln, ld, ll, w)  # full grid of starts on every resample
    t_naive = (time.perf_counter() - start) / n_naive
    ours = t_boot / n_boot
    print(
        f"joint fit, {n_points} points: point fit (grid of {len(laws.joint_grid(ll))} starts scored, best 8 "
        f"refined) {t_point:.2f} s"
    )
    print(
        f"joint fit + {n_boot} bootstrap resamples: {t_point + t_boot:.2f} s ({1e3 * ours:.2f} ms/resample, "
        f"{fit.n_bootstrap_failed} failed); alpha = {fit.params['alpha']:.4f} {fit.ci95['alpha']}"
    )
    print(
        f"reference, naive bootstrap (full multi-start per resample, {n_naive} resamples): "
        f"{1e3 * t_naive:.1f} ms/resample -> {n_boot} would take {t_naive * n_boot:.1f} s"
    )
    print(f"ratio naive / ours per resample: {t_naive / ours:.1f}x")


def recovery() -> None:
    rng = np.random.default_rng(0)
    x = np.geomspace(1e5, 1e9, 10)
    y = (SINGLE["A"] * x ** -SINGLE["alpha"] + SINGLE["E"]) * np.exp(rng.normal(0.0, 1e-4, x.size))
    fit = fit_single_law(
        "model", [str(i) for i in range(10)], x, y, x_name="p", loss_name="l", irreducible="auto", n_boot=0
    )
    err_single = abs(fit.params["alpha"] / SINGLE["alpha"] - 1)
    big_n, big_d, yj = joint_points(120, 1e-4, rng)
    joint = fit_joint_law([str(i) for i in range(120)], big_n, big_d, yj, loss_name="l", n_boot=0)
    law = TrueLaw()
    print(
        f"exponent recovery at 1e-4 log noise: single-law alpha error {100 * err_single:.3f} %; joint alpha "
        f"{100 * abs(joint.params['alpha'] / law.alpha - 1):.3f} %, beta "
        f"{100 * abs(joint.params['beta'] / law.beta - 1):.3f} %"
    )


def coverage(draws: int, joint_draws: int) -> None:
    rng = np.random.default_rng(7)
    for mode, with_e in (("yes", True), ("no", False)):
        hits = {k: 0 for k in (SINGLE if with_e else ("A", "alpha"))}
        for i in range(draws):
            x = np.geomspace(1e5, 1e9, 10)
            y = (SINGLE["A"] * x ** -SINGLE["alpha"] + (SINGLE["E"] if with_e else 0)) * np.exp(
                rng.normal(0.0, 0.01, x.size)
            )
            fit = fit_single_law(
                "model",
                [str(j) for j in range(10)],
                x,
                y,
                x_name="p",
                loss_name="l",
                irreducible=mode,
                n_boot=200,
                seed=i,
            )
            for k in hits:
                hits[k] += fit.ci95[k][0] <= SINGLE[k] <= fit.ci95[k][1]
        print(
            f"coverage of 95 % intervals, single law (E {mode}), 10 points, 1 % noise, {draws} draws x 200 "
            "resamples: " + ", ".join(f"{k} {100 * v / draws:.0f} %" for k, v in hits.items())
        )
    law, hits = TrueLaw(), {"alpha": 0, "beta": 0}
    for i in range(joint_draws):
        big_n, big_d, y = joint_points(40, 0.01, rng)
        fit = fit_joint_law([str(j) for j in range(40)], big_n, big_d, y, loss_name="l", n_boot=100, seed=i)
        for k in hits:
            hits[k] += fit.ci95[k][0] <= getattr(law, k) <= fit.ci95[k][1]
    print(
        f"coverage, joint law, 40 points, 1 % noise, {joint_draws} draws x 100 resamples: "
        + ", ".join(f"{k} {100 * v / joint_draws:.0f} %" for k, v in hits.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="more coverage draws (minutes)")
    args = parser.parse_args()
    time_joint(n_points=200, n_boot=1000, n_naive=10)
    recovery()
    coverage(draws=200 if args.full else 40, joint_draws=100 if args.full else 20)


if __name__ == "__main__":
    main()
