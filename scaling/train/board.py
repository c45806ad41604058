"""Optional TensorBoard mirror of metrics.jsonl (`logging.tensorboard: true`), written by rank 0 only.

    <run_dir>/tensorboard/events.out.tfevents.*     step = optimizer step
    train rows: train/loss, train/grad_norm, train/tokens_per_s, train/mfu (when known), lr/<group>
    val rows:   val/loss

A resumed run opens its writer with `purge_step` = resumed step + 1: TensorBoard then hides what a killed
attempt logged after that checkpoint, so no step appears twice (the rule metrics.jsonl follows). Each row is
flushed as it is written, so a kill loses nothing a checkpoint already covers. With the option off this
module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from scaling.config import ConfigError

BOARD_DIR = "tensorboard"
TRAIN_KEYS = ("loss", "grad_norm", "tokens_per_s", "mfu")


def check_available(enabled: bool) -> None:
    """Every rank, before start-up: asking for TensorBoard without the package is a config error (exit 2)."""
    if enabled and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "logging.tensorboard=true but the tensorboard package is not installed; "
            "pip install tensorboard or set logging.tensorboard=false"
        )


def row_scalars(row: dict[str, Any]) -> dict[str, float]:
    """{tag: value} of one metrics.jsonl row; missing, null and non-finite values are left out."""
    if row.get("kind") == "val":
        pairs = [("val/loss", row.get("val_loss"))]
    else:
        pairs = [(f"train/{key}", row.get(key)) for key in TRAIN_KEYS]
        pairs += [(f"lr/{group}", lr) for group, lr in (row.get("lr") or {}).items()]
    return {
        tag: float(v)
        for tag, v in pairs
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class TensorBoardMirror:
    """Writes each metrics row's scalars to `log_dir`; `resume_step` rows and earlier are kept."""

    def __init__(self, log_dir: Path, *, resume_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # lazy: only when the option is on

        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=resume_step + 1)

    def write(self, row: dict[str, Any]) -> None:
        for tag, value in row_scalars(row).items():
            self._writer.add_scalar(tag, value, global_step=int(row["step"]))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def open_board(enabled: bool, run_dir: Path, resume_step: int) -> TensorBoardMirror | None:
    """The mirror for rank 0, or None when `logging.tensorboard` is off."""
    return TensorBoardMirror(run_dir / BOARD_DIR, resume_step=resume_step) if enabled else None
