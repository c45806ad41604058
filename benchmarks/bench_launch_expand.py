"""Launch overhead: expanding and validating a large sweep, against a bare itertools.product of the same axes.

    .venv/bin/python benchmarks/bench_launch_expand.py [--full]

Prints runs per second for both and their ratio: the cost of names, resources, site checks and strict
TrainConfig validation per run (what `--dry-run` and every submission pay before anything reaches Slurm).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from launch.spec import expand_runs, load_spec, resolve_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="a 4x larger grid")
    args = parser.parse_args()
    seeds = list(range(40 if args.full else 10))
    axes = {"model.width": [16, 32, 48, 64], "optimizer.lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], "seed": seeds}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        spec = {
            "name": "bench",
            "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"),
            "overrides": {"model.name": "custom", "model.headdim": 16},
            "axes": {"grid": axes},
        }
        path.write_text(yaml.safe_dump(spec))
        t0 = time.perf_counter()
        spec_obj, base, site = load_spec(path)
        plans = expand_runs(spec_obj, base, site, str(path))
        for plan in plans:
            resolve_config(plan, str(path))
        launch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bare = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    bare_s = time.perf_counter() - t0
    n = len(plans)
    assert n == len(bare)
    print(f"runs: {n}")
    print(f"launch expand+validate: {launch_s * 1e3:.1f} ms ({n / launch_s:.0f} runs/s)")
    print(f"reference itertools.product: {bare_s * 1e3:.3f} ms ({n / bare_s:.0f} runs/s)")
    print(f"ratio (launch / reference time): {launch_s / bare_s:.0f}x; per run {launch_s / n * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
