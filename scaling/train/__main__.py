"""`python -m scaling.train CONFIG.yaml [a.b=c ...] --run-dir DIR`: one rank of a training run."""

from __future__ import annotations

import argparse
import faulthandler
import sys
from pathlib import Path

from scaling.config import ConfigError
from scaling.rundir import EXIT_CONFIG, FAILED, update_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaling.train", description=__doc__)
    parser.add_argument("config", help="YAML config (a TrainConfig tree)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    parser.add_argument("--run-dir", required=True, help="run directory (status, metrics, checkpoints)")
    args = parser.parse_args(argv)
    from scaling.train import DistEnv, load_train_config, run

    try:
        cfg = load_train_config(args.config, args.overrides)
        dist = DistEnv.from_environ()
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        _record_config_error(Path(args.run_dir), str(err))
        return EXIT_CONFIG
    return run(cfg, args.run_dir, dist)


def _record_config_error(run_dir: Path, reason: str) -> None:
    """status.json says why (exit 2: do not resubmit), written by rank 0 only."""
    import os

    if (
        os.environ.get("RANK", os.environ.get("SLURM_PROCID", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
        != "0"
    ):
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    update_status(run_dir, state=FAILED, reason=reason, exit_code=EXIT_CONFIG)


if __name__ == "__main__":
    faulthandler.enable()  # a fatal signal (SIGSEGV, SIGABRT, ...) leaves each thread's stack in the log
    sys.exit(main())
