"""Entry point: `python -m scaling.data simulate|import-tpcpp|inspect ...` (see scaling/data/cli.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from scaling.data.cli import EXIT_USAGE, cmd_import, cmd_inspect, cmd_simulate

MPI_HELP = "split the shards between the ranks of an MPI job (mpirun -np N ...); same output as one process"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scaling.data", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate events into a dataset folder")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--events", type=int, required=True, help="number of events over all splits")
    sim.add_argument("--seed", type=int, default=0, help="event i uses rng([seed, i])")
    sim.add_argument("--shard-events", type=int, default=1024, help="events per shard (or per .npz file)")
    sim.add_argument("--splits", default="train=0.9,val=0.05,test=0.05", help="name=share,...")
    sim.add_argument("--format", choices=("hdf5", "tpcpp"), default="hdf5", help="output layout")
    sim.add_argument(
        "--profile", choices=("sphenix", "paper", "small"), default="sphenix",
        help="sphenix: like the paper's TPCpp-10M (loopers, decays, multiple scattering); "
        "paper: ideal helices (the earlier default); small: quick tests",
    )  # fmt: skip
    sim.add_argument("--mpi", action="store_true", help=MPI_HELP)
    sim.set_defaults(func=cmd_simulate)
    imp = sub.add_parser("import-tpcpp", help="convert the TPCpp-10M NumPy layout")
    imp.add_argument("src", help="TPCpp-10M root (holding labeled/ and/or unlabeled/)")
    imp.add_argument("--out", required=True, help="output folder")
    imp.add_argument("--shard-events", type=int, default=1024, help="events per shard")
    imp.add_argument("--skip-bad-events", action="store_true", help="skip (and count) events with NaN/inf")
    imp.add_argument("--mpi", action="store_true", help=MPI_HELP)
    imp.set_defaults(func=cmd_import)
    ins = sub.add_parser("inspect", help="check a dataset and print per-split figures")
    ins.add_argument("dir", help="dataset folder (holding manifest.json)")
    ins.add_argument("--split", default=None, help="only this split (default: all)")
    ins.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if getattr(args, "events", 1) < 1 or getattr(args, "shard_events", 1) < 1:
        print("error: --events and --shard-events must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except (ValueError, OSError) as err:
        if getattr(err, "report", True):  # an MPI rank whose failure rank 0 reports stays quiet
            print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
