"""`python launch/sweep.py SPEC.yaml [--executor auto|slurm|local] [--dry-run [--show config|sbatch]]
[--only A,B] [--status] [--resubmit] [--rerun-changed] [--max-attempts N]`: launch a study, idempotently, and
report on it. Before anything is submitted every run's config, dataset, splits, backbone and resources are
checked (one line per problem); `--dry-run` plans anywhere, without a Slurm controller and without torch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from launch import plan as planner  # noqa: E402
from scaling.config import ConfigError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python launch/sweep.py", description=__doc__)
    parser.add_argument("spec", help="sweep spec YAML (sweeps/*.yaml)")
    parser.add_argument("--executor", choices=("auto", "slurm", "local"), default="auto")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, submit nothing")
    parser.add_argument("--only", default="", help="comma-separated run names")
    parser.add_argument("--status", action="store_true", help="print the status table, submit nothing")
    parser.add_argument("--resubmit", action="store_true", help="resubmit failed / preempted / lost runs")
    parser.add_argument("--max-attempts", type=int, default=None, help="attempts per run (spec default)")
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="rerun started runs whose config the spec now changes (the old run folder is moved aside)",
    )
    parser.add_argument("--no-wait", action="store_true", help="Slurm: return after submitting")
    parser.add_argument(
        "--show",
        action="append",
        choices=("config", "sbatch"),
        help="with --dry-run: print each run's resolved config.yaml (config) or its sbatch script (sbatch)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return planner.execute(args)
    except (ConfigError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
