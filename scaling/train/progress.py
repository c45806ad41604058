"""The rank-0 progress line (the Slurm log): step/budget, loss, val_loss_ratio, throughput, MFU and ETA."""

from __future__ import annotations

import math


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


__all__ = ["format_duration", "progress_line"]
