"""One downstream run: `python -m analysis.downstream [CONFIG.yaml] [key=value ...] --run-dir DIR`.

    python -m analysis.downstream --run-dir runs/ds/pid-m3-1000-s0 \
        backbone=runs/model-scaling/m3 task=pid n_train_events=1000 seed=0 dataset=data/sim
    python -m analysis.downstream --run-dir runs/ds/pid-ao-1000-s0 backbone=adapter_only task=pid ...
    python -m analysis.downstream --run-dir runs/ds/pid-m3-ft-1000-s0 backbone=runs/model-scaling/m3 \
        regime=finetune layers=prenorm task=pid ...        # regimes: frozen, finetune, scratch, adapter_only

Keys are the fields of `DownstreamConfig` (`--help-keys` lists them). Exit codes follow the trainer's
(scaling/rundir.py): 0 completed, 2 configuration or input error (deterministic: do not resubmit), 4 failed
at run time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from analysis.downstream.run import run_downstream
from analysis.downstream.train import DownstreamConfig
from scaling.config import ConfigError, field_docs, load_config
from scaling.rundir import EXIT_CONFIG, EXIT_FAILED, EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.downstream", description=__doc__.split("\n")[0])
    parser.add_argument("items", nargs="*", help="optional CONFIG.yaml, then key=value overrides")
    parser.add_argument("--run-dir", type=Path, help="run directory (config, status, metrics.json)")
    parser.add_argument("--help-keys", action="store_true", help="list every config key with its doc")
    args = parser.parse_args(argv)
    if args.help_keys:
        for key, text in field_docs(DownstreamConfig).items():
            print(f"{key:32s} {text}")
        return EXIT_OK
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = args.items[0] if args.items and "=" not in args.items[0] else None
    overrides = args.items[1:] if path else args.items
    if args.run_dir is None:
        print("error: --run-dir is required", file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = load_config(DownstreamConfig, path, overrides)
        result = run_downstream(cfg, args.run_dir)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    headline = {k: v for k, v in result["metrics"].items() if isinstance(v, float)}
    print(json.dumps({"task": result["task"], "backbone": result["backbone"], **headline}, indent=1))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
