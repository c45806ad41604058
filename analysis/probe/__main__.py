"""Linear probes of a run's frozen backbone, beside a random-init backbone and the raw inputs.

    python -m analysis.probe runs/quickstart/width64 [--events 200] [--eval-events 100]
    python -m analysis.probe runs/quickstart/            # every completed run without an up-to-date probe

Writes RUN_DIR/probe.json (see analysis/probe/run.py) and prints each run's table; the sweep report shows the
same tables (`python -m analysis.report`). Exit 0 when every run was probed or up to date, 2 on bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from analysis.probe.report import probe_table
from analysis.probe.run import ProbeOptions, is_up_to_date, probe_run, runs_to_probe


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, ProbeOptions]:
    p = argparse.ArgumentParser(prog="python -m analysis.probe", description=__doc__.split("\n")[0])
    p.add_argument("path", type=Path, help="a run directory, or a sweep folder runs/<sweep>/")
    p.add_argument("--events", type=int, default=200, help="training events of the probes (default 200)")
    p.add_argument("--eval-events", type=int, default=None, help="held-out events scored (default events/2)")
    p.add_argument("--train-split", default="train", help="labelled split the probes are fitted on")
    p.add_argument("--eval-split", default=None, help="held-out split scored (default: the run's val split)")
    p.add_argument("--dataset", default=None, help="dataset folder (default: the run's data.dataset_dir)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="training events that choose the penalty")
    p.add_argument("--max-points", type=int, default=100_000, help="points kept per split (memory bound)")
    p.add_argument("--force", action="store_true", help="probe again even where probe.json is up to date")
    args = p.parse_args(argv)
    opts = ProbeOptions(n_events=args.events, n_eval_events=args.eval_events or max(1, args.events // 2),
                        train_split=args.train_split, eval_split=args.eval_split, dataset=args.dataset,
                        val_fraction=args.val_fraction, max_points=args.max_points)  # fmt: skip
    return args, opts


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args, opts = parse_args(argv)
        runs = runs_to_probe(args.path)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = 0
    for run_dir in runs:
        if not args.force and is_up_to_date(run_dir, opts):
            print(f"{run_dir}: probe.json is up to date")
            continue
        start = time.perf_counter()
        try:
            result = probe_run(run_dir, opts)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"\n{run_dir}/probe.json ({time.perf_counter() - start:.1f} s)\n\n{probe_table(result)}\n")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
