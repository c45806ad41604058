"""The training run: set-up, resume, the step loop (step -> log -> validate -> save), exit status.

    >>> exit_code = run(cfg, run_dir, DistEnv.from_environ())   # 0 done, 2 config, 3 preempted, 4 failed

Exit codes (CONTRACTS.md): 0 completed; 2 config/usage error; 3 preempted (checkpointed on SIGUSR2/SIGTERM,
status `preempted`); 4 failed at run time (repeated non-finite steps); 1 crash.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import random
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling.atomic import write_json_atomic, write_text_atomic
from scaling.config import ConfigError, dump_yaml
from scaling.rundir import EXIT_CONFIG, EXIT_CRASH, EXIT_FAILED, EXIT_OK, EXIT_PREEMPTED  # noqa: F401 - re-exported
from scaling.train import ledger
from scaling.train.config import TrainConfig
from scaling.train.dist import DistEnv

log = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """A deterministic failure at run time (exit 4): resubmitting would fail again."""


@dataclass(kw_only=True)
class Totals:
    """Cumulative counters saved in every checkpoint (so a resumed run continues them)."""

    events: int = 0
    tokens: int = 0
    flops: float = 0.0
    wall_s: float = 0.0
    bad_steps: int = 0
    budget_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    val_ratios: list[float] = field(default_factory=list)  # val_loss / the layer lookup's, per validation


def validation_sums(predict: Any, batches: list[Any], objective: Any) -> list[float]:
    """[event-weighted loss sum, events, valid slots, squared error per coordinate...] of `predict` (packed
    batch -> [T, out_dim]) over `batches`; sums, so ranks can add theirs before `validation_means`."""
    total, n, cnt, sq = 0.0, 0, 0.0, [0.0] * len(objective.coordinates)
    with torch.no_grad():
        for batch in batches:
            pred = predict(batch).reshape(batch.n_tokens, -1).float()
            total += float(objective.loss(pred, batch)) * batch.n_events
            n += batch.n_events
            s, c = objective.coordinate_errors(pred, batch.targets)
            sq, cnt = [a + float(b) for a, b in zip(sq, s, strict=True)], cnt + float(c)
    return [total, n, cnt, *sq]


def validation_means(sums: list[float]) -> dict[str, Any]:
    """{"loss": event-weighted mean loss, "coord_mse": per-coordinate MSE} from `validation_sums`."""
    total, n, cnt, *sq = sums
    return {
        "loss": total / n if n else float("nan"),
        "coord_mse": [v / cnt if cnt else float("nan") for v in sq],
    }


def validation_row(
    val_loss: float, coord_mse: list[float], baseline: dict[str, dict[str, Any]], names: tuple[str, ...]
) -> dict[str, Any]:
    """The validation figures of one evaluation: the loss, its ratio to each lookup baseline's loss on the
    same events (`val_loss_ratio` for the layer table, `val_loss_ratio_<name>` for the others) and the
    per-coordinate MSE ratios to the layer table's. Near 1: the model learned no more than the table."""

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 and np.isfinite(a) else float("nan")

    row: dict[str, Any] = {"val_loss": val_loss}
    first = next(iter(baseline), None)  # the objective's primary trivial predictor (layer for k-NNN)
    for name, base in baseline.items():
        row["val_loss_ratio" if name == first else f"val_loss_ratio_{name}"] = ratio(val_loss, base["loss"])
    if first is not None and names:  # classifiers and contrastive report no coordinates
        row["val_coord_ratio"] = {
            n: ratio(c, b) for n, c, b in zip(names, coord_mse, baseline[first]["coord_mse"], strict=True)
        }
    return row


def _finite_or_none(value: Any) -> Any:
    """NaN and inf become None (strict JSON readers reject bare NaN), recursively through dicts."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def ratio_summary(
    ratios: list[float], last_row: dict[str, Any], baseline: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """summary.json's baseline block: final and best val_loss_ratio, the last row's other ratios, and the
    baselines' own validation losses (so a reader can recompute every ratio)."""
    finite = [r for r in ratios if np.isfinite(r)]
    return {
        "final_val_loss_ratio": ratios[-1] if ratios and np.isfinite(ratios[-1]) else None,
        "best_val_loss_ratio": min(finite) if finite else None,
        "final_val_ratios": _finite_or_none(
            {k: v for k, v in last_row.items() if k.startswith("val_") and k != "val_loss"}
        ),
        "baseline_val_loss": _finite_or_none({name: b["loss"] for name, b in baseline.items()}),
    }


def run(cfg: TrainConfig, run_dir: str | Path, dist: DistEnv) -> int:
    """Train `cfg` into `run_dir` as rank `dist.rank`; returns the exit code (never raises)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        from scaling.train.engine import Trainer

        trainer = Trainer(cfg, run_dir, dist)
        code = trainer.train()
    except ConfigError as err:
        return _fail(run_dir, dist, EXIT_CONFIG, str(err))
    except RunFailed as err:
        return _fail(run_dir, dist, EXIT_FAILED, str(err))
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.error("%s", traceback.format_exc())
            return _fail(run_dir, dist, EXIT_CRASH, f"{type(err).__name__}: {err}")
        # a full disk: one line; resubmitting after freeing space resumes from the last complete checkpoint
        where = f" writing {err.filename}" if err.filename else ""
        reason = (
            f"disk full{where} ({os.strerror(err.errno)}); free space or raise the quota, then resubmit "
            "(it resumes from the last complete checkpoint)"
        )
        return _fail(run_dir, dist, EXIT_CRASH, reason)
    except Exception as err:  # noqa: BLE001 - any crash is reported in status.json, then exit 1
        log.error("%s", traceback.format_exc())
        return _fail(run_dir, dist, EXIT_CRASH, f"{type(err).__name__}: {err}")
    try:
        trainer.close()
    except Exception:  # noqa: BLE001 - the run ended as `code` says; a failed release must not change that
        log.warning("releasing the engine or the process groups failed:\n%s", traceback.format_exc())
    return code


def _fail(run_dir: Path, dist: DistEnv, code: int, reason: str) -> int:
    log.error("%s", reason)
    if dist.is_main:
        try:
            ledger.update_status(run_dir, state="failed", reason=reason, exit_code=code)
        except OSError as err:  # a full disk: no room for a new status.json beside the old one
            if not ledger.overwrite_status(run_dir, state="failed", reason=reason, exit_code=code):
                log.error("%s/status.json still says running: cannot write it (%s)", run_dir, err)
    return code


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def write_run_info(cfg: TrainConfig, run_dir: Path, dist: DistEnv, device_name: str) -> None:
    """Resolved config, code version and environment, before step 0 (rank 0)."""
    write_text_atomic(run_dir / "config.yaml", dump_yaml(cfg))
    write_json_atomic(run_dir / "environment.json", ledger.environment_info(dist.world_size, device_name))


def plan_resume(root: Path, dist: DistEnv, zero_stage: int, run_dir: Path) -> tuple[Path | None, bool]:
    """(newest complete checkpoint or None, whether it loads through its universal copy).

    ZeRO partitions are per rank: another world size (or stage) needs the universal copy, except between
    stage-0 checkpoints, which hold the whole optimizer state in one file."""
    from scaling.train import checkpoint as ckpt
    from scaling.train.universal import has_universal

    folder = ckpt.find_resume(root)
    if folder is None:
        return None, False
    meta = ckpt.read_meta(folder)
    saved, saved_stage = int(meta.get("world_size", dist.world_size)), int(meta.get("zero_stage", zero_stage))
    if saved_stage == zero_stage and (saved == dist.world_size or zero_stage == 0):
        return folder, False
    if zero_stage > 0 and saved_stage > 0 and has_universal(folder):
        return folder, True
    raise RunFailed(
        f"{folder}: saved with world size {saved} (ZeRO stage {saved_stage}), resumed with "
        f"{dist.world_size} (ZeRO stage {zero_stage}); convert it once with `python -m "
        f"scaling.train.universal {run_dir}` and resume, or resume with {saved} processes and that stage"
    )


def progress_line(
    step: int,
    total: int,
    loss: float,
    tokens_per_s: float,
    eta_s: float | None,
    *,
    mfu: float | None = None,
    val_loss_ratio: float | None = None,
) -> str:
    """One line of the rank-0 log: step/budget, loss, val_loss_ratio (when a validation row carries it),
    throughput, MFU (where the device's peak is known) and the ETA at this attempt's rate."""
    parts = [f"step {step}/{total}", f"loss {loss:.4g}"]
    if val_loss_ratio is not None:
        parts.append(f"val_loss_ratio {val_loss_ratio:.4g}")
    parts.append(f"{tokens_per_s:,.0f} tok/s")
    parts.append(f"mfu {mfu:.1%}" if mfu is not None else "mfu -")
    parts.append(f"eta {format_duration(eta_s)}")
    return "  ".join(parts)


def format_duration(seconds: float | None) -> str:
    """'1h05m', '4m07s', or '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


def setup_logging(rank: int) -> None:
    level = logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format=f"[rank {rank}] %(levelname)s %(message)s")
    os.environ.setdefault("DS_ACCELERATOR", "cpu" if not torch.cuda.is_available() else "cuda")
