"""Re-evaluate a run's checkpoints against its objective's trivial predictors, after the fact.

    python -m scaling.train.ratios runs/cpu_study/w128-f1.0-physical          # every complete checkpoint
    python -m scaling.train.ratios RUN_DIR --steps 300,1200                    # some of them

For runs trained before the trainer logged `val_loss_ratio`, runs whose baseline definition changed since, and
the ratio against training length of one run (its budget checkpoints at 25 / 50 / 100 %). The statistics
(target scaling, difficulty table, baselines) are refitted with the run's config on the same first training
events the trainer uses, and each checkpoint is evaluated on the same fixed validation events, in one process
on the CPU (or the GPU where there is one). Writes RUN_DIR/ratios.json and prints one row per checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from scaling.atomic import write_json_atomic
from scaling.data.loader import EventStream
from scaling.data.shards import read_manifest
from scaling.train.batches import BatchSource, build_normalizer, fit_statistics, validation_batches
from scaling.train.checkpoint import complete_checkpoints, load_frozen_model
from scaling.train.validation import validation_means, validation_row, validation_sums

log = logging.getLogger(__name__)


def evaluate(model: Any, objective: Any, batches: list, predict_baselines: dict[str, Any]) -> dict[str, Any]:
    """The trainer's validation row (loss, ratios, per-coordinate ratios) of `model` on `batches`."""
    base = {
        name: validation_means(validation_sums(lambda b, p=p: p(b.features), batches, objective))
        for name, p in predict_baselines.items()
    }
    own = validation_means(
        validation_sums(
            lambda b: model(b.features, b.seq_idx, **objective.model_inputs(b)), batches, objective, True
        ),
        tuple(objective.metric_names),
    )
    return validation_row(own["loss"], own["coord_mse"], base, tuple(objective.coordinates), own["metrics"])


def run_ratios(run_dir: Path, steps: list[int] | None = None) -> list[dict[str, Any]]:
    """One validation row per complete checkpoint of `run_dir` (or the `steps` given)."""
    found = dict(complete_checkpoints(run_dir / "checkpoints"))
    if not found:
        raise ValueError(f"{run_dir}: no complete checkpoint; train the run first")
    wanted = sorted(found) if steps is None else steps
    missing = [s for s in wanted if s not in found]
    if missing:
        raise ValueError(f"{run_dir}: no complete checkpoint at step(s) {missing}; have {sorted(found)}")
    _, cfg = load_frozen_model(run_dir, wanted[-1])
    data = cfg.data
    manifest = read_manifest(data.dataset_dir)
    from scaling.objectives import build_objective

    objective = build_objective(cfg.objective)
    objective.bind_stats(manifest["stats"])
    stream = EventStream(data.dataset_dir, data.train_split, shuffle=False, epochs=1)
    source = BatchSource(stream, normalizer=build_normalizer(data, manifest["stats"]), objective=objective,
                         serialization=cfg.serialization, seed=cfg.seed,
                         micro_batch_events=cfg.budget.micro_batch_events)  # fmt: skip
    fitted = fit_statistics(
        data.dataset_dir, data.train_split, n_events=data.difficulty_events, source=source
    )
    predictors = {n: objective.baseline_predictor(t) for n, t in fitted["baseline"].items()}
    batches = validation_batches(data.dataset_dir, data.val_split, n_events=data.val_events, rank=0,
                                 world_size=1, source=source)  # fmt: skip
    rows = []
    for i, step in enumerate(wanted):
        t0 = time.time()
        model, _ = load_frozen_model(run_dir, step)
        row = {"step": step, **evaluate(model, objective, batches, predictors)}
        rows.append(row)
        log.info("checkpoint %d/%d (step %d) evaluated in %.0f s", i + 1, len(wanted), step, time.time() - t0)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = ["step     val_loss    ratio   ratio_layer_eta   per coordinate"]
    for r in rows:
        coords = " ".join(f"{k} {v:.3f}" for k, v in (r.get("val_coord_ratio") or {}).items())
        eta = r.get("val_loss_ratio_layer_eta", float("nan"))
        lines.append(
            f"{r['step']:<8d} {r['val_loss']:<11.5g} {r['val_loss_ratio']:<7.3f} {eta:<17.3f} {coords}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scaling.train.ratios", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--steps", help="comma-separated checkpoint steps (default: every complete checkpoint)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        steps = [int(s) for s in args.steps.split(",")] if args.steps else None
        rows = run_ratios(args.run_dir, steps)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_rows(rows))
    write_json_atomic(args.run_dir / "ratios.json", {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
