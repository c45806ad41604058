"""`python -m scaling.train CONFIG.yaml [a.b=c ...] --run-dir DIR`: one rank of a training run."""

from __future__ import annotations

import argparse
import sys

from scaling.config import ConfigError


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
        return 2
    return run(cfg, args.run_dir, dist)


if __name__ == "__main__":
    sys.exit(main())
