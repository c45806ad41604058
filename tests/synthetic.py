"""Synthetic sweeps with known scaling laws: run directories exactly as the trainer writes them.

A test fixture (the analysis tests, benchmarks/bench_analysis_fit.py), and a way to see a report before a
sweep has run. Loss follows L(N, D) = E + A/N^α + B/D^β along each run's training (D = tokens seen), times
log-normal noise.

    >>> write_sweep(Path("/tmp/sweep"), widths=[64, 128, 256, 512], steps=300, seed=0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scaling.atomic import write_json_atomic, write_text_atomic


@dataclass(kw_only=True)
class TrueLaw:
    """Parameters of the generating law (defaults of the order of Hoffmann et al. 2022's fit)."""

    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28

    def loss(self, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta


def params_of_width(width: int) -> float:
    """Non-embedding parameters of a 12-layer Mamba-2 stack of this width (approximate)."""
    return 12.0 * (6.5 * width * width + 2 * 128 * width * 2 + 4 * 2 * width)


def _config(width: int, lr: float, fraction: float) -> dict[str, Any]:
    """The config.yaml keys the analysis reads."""
    return {
        "model": {"name": "custom", "width": width},
        "data": {"fraction": fraction},
        "optimizer": {"lr": lr},
    }


def _status(state: str, job_ids: list[str], last_step: int, budget_steps: int) -> dict[str, Any]:
    """status.json of a run that ended (or stopped) at `last_step`."""
    return {
        "state": state,
        "attempts": 1,
        "job_ids": job_ids,
        "last_step": last_step,
        "budget_steps": budget_steps,
        "reason": None,
        "updated": "2026-01-01T00:00:00Z",
        "exit_code": 0,
    }


def _summary(width: int, n: float, final: dict[str, Any], *, best_val_loss: float, steps: int,
             wall_s: float, params_total: float) -> dict[str, Any]:  # fmt: skip
    """summary.json of a completed run whose last validation row is `final`."""
    return {
        "model": f"w{width}",
        "width": width,
        "params_total": params_total,
        "params_non_embedding": n,
        "tokens": final["tokens"],
        "events": final["events"],
        "flops": final["flops"],
        "steps": steps,
        "final_val_loss": final["val_loss"],
        "best_val_loss": best_val_loss,
        "gpu_hours": 0.0,
        "device": "cpu",
        "world_size": 1,
        "wall_s": wall_s,
    }


def write_run(
    run_dir: Path,
    *,
    width: int,
    steps: int,
    tokens_per_step: float,
    law: TrueLaw,
    noise: float,
    rng: np.random.Generator,
    state: str = "completed",
    lr: float = 2e-4,
    fraction: float = 1.0,
    n_val: int = 20,
) -> None:
    """One run directory: config.yaml, status.json, metrics.jsonl, and summary.json when completed."""
    n = params_of_width(width)
    stop = steps if state == "completed" else steps // 2
    val_steps = np.unique(np.linspace(steps / n_val, stop, max(2, int(n_val * stop / steps))).astype(int))
    cfg = {"run": {"name": run_dir.name, "sweep": run_dir.parent.name}, **_config(width, lr, fraction)}
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg))
    rows = []
    for step in val_steps:
        tokens = float(step * tokens_per_step)
        loss = float(law.loss(n, tokens) * np.exp(rng.normal(0.0, noise)))
        common = {
            "step": int(step),
            "events": int(step * 8),
            "tokens": tokens,
            "flops": 6.0 * n * tokens,
            "wall_s": float(step) * 0.1,
        }
        rows.append(
            {
                "kind": "train",
                **common,
                "loss": loss * 1.01,
                "lr": {"default": lr},
                "grad_norm": 1.0,
                "tokens_per_s": 1e4,
                "mfu": None,
            }
        )
        rows.append({"kind": "val", **common, "val_loss": loss})
    write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    write_json_atomic(run_dir / "status.json", _status(state, ["1"], int(stop), steps))
    if state != "completed":
        return
    val = [r for r in rows if r["kind"] == "val"]
    summary = _summary(width, n, val[-1], best_val_loss=min(r["val_loss"] for r in val), steps=steps,
                       wall_s=float(steps) * 0.1, params_total=n * 1.01)  # fmt: skip
    # budget checkpoints at 25, 50 and 100 % of the steps, as the trainer records them (the nearest val rows)
    checkpoints = []
    for f in (0.25, 0.5, 1.0):
        r = min(val, key=lambda row, f=f: abs(row["step"] - f * steps))
        keys = ("step", "val_loss", "flops", "tokens")
        checkpoints.append({"fraction": f, **{k: r[k] for k in keys}})
    write_json_atomic(run_dir / "summary.json", {**summary, "budget_checkpoints": checkpoints})


def write_sweep(
    sweep_dir: Path,
    *,
    widths: list[int],
    steps: int = 300,
    tokens_per_step: float = 2e5,
    law: TrueLaw | None = None,
    noise: float = 0.003,
    seed: int = 0,
    extra_states: dict[str, str] | None = None,
) -> Path:
    """A model-scaling sweep, one run per width (`w<width>`); `extra_states` adds unfinished runs by name."""
    law = law or TrueLaw()
    rng = np.random.default_rng(seed)
    for width in widths:
        write_run(
            sweep_dir / f"w{width}",
            width=width,
            steps=steps,
            tokens_per_step=tokens_per_step,
            law=law,
            noise=noise,
            rng=rng,
        )
    for i, (name, state) in enumerate((extra_states or {}).items()):
        write_run(
            sweep_dir / name,
            width=widths[i % len(widths)],
            steps=steps,
            tokens_per_step=tokens_per_step,
            law=law,
            noise=noise,
            rng=rng,
            state=state,
        )
    write_json_atomic(
        sweep_dir / "sweep.json", {"runs": sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())}
    )
    return sweep_dir


def write_lr_sweep(
    sweep_dir: Path,
    *,
    widths: list[int],
    lrs: list[float],
    lr_opt: dict[int, float],
    curvature: float = 0.05,
    noise: float = 0.0,
    seed: int = 0,
) -> Path:
    """An lr_transfer sweep: loss = L(N) + curvature·(log2 lr − log2 lr_opt[width])² (times noise)."""
    law, rng = TrueLaw(), np.random.default_rng(seed)
    for width in widths:
        n = params_of_width(width)
        for lr in lrs:
            run_dir = sweep_dir / f"w{width}_lr{lr:.2e}"
            base = float(law.loss(n, 1e9)) + curvature * (np.log2(lr) - np.log2(lr_opt[width])) ** 2
            loss = base * float(np.exp(rng.normal(0.0, noise)))
            write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(_config(width, lr, 1.0)))
            write_json_atomic(run_dir / "status.json", _status("completed", [], 10, 10))
            row = {
                "kind": "val",
                "step": 10,
                "events": 80,
                "tokens": 1e9,
                "flops": 6e9 * n,
                "val_loss": loss,
                "wall_s": 1.0,
            }
            write_text_atomic(run_dir / "metrics.jsonl", json.dumps(row) + "\n")
            summary = _summary(width, n, row, best_val_loss=loss, steps=10, wall_s=1.0, params_total=n)
            write_json_atomic(run_dir / "summary.json", summary)
    return sweep_dir
