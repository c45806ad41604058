"""The run ledger: status.json, metrics.jsonl (one flushed row per line) and summary.json.

Field names are the run-directory contract (README 'The run directory'); status.json's merge, `now_iso`
and the exit codes live in scaling/rundir.py, shared with the launcher and the downstream runs. Only rank 0
writes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from scaling.atomic import write_json_atomic
from scaling.rundir import (  # noqa: F401 - update_status and overwrite_status are the trainer's interface
    SUMMARY,
    now_iso,
    overwrite_status,
    update_status,
)

# Peak dense bf16 FLOP/s by device-name fragment (vendor data sheets, without sparsity).
PEAK_BF16_FLOPS: dict[str, float] = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def peak_flops(device_name: str | None) -> float | None:
    """Peak bf16 FLOP/s of a GPU named `device_name` (e.g. "NVIDIA H100 80GB HBM3"); None if unknown/CPU."""
    if not device_name:
        return None
    for key, value in PEAK_BF16_FLOPS.items():
        if key in device_name.upper():
            return value
    return None


def mfu(flops_per_s: float, peak_per_device: float | None, n_devices: int) -> float | None:
    """Model FLOPs utilisation = achieved / (peak x devices) (PaLM, Chowdhery et al. 2022, App. B)."""
    if peak_per_device is None or n_devices < 1:
        return None
    return flops_per_s / (peak_per_device * n_devices)


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite floats are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class MetricsWriter:
    """Appends rows to metrics.jsonl, each flushed and fsynced (a kill loses at most the row in flight)."""

    def __init__(self, path: Path, *, resume_step: int | None, mirror: Any = None) -> None:
        """`mirror`: anything with write(row) and close() that gets every row too (TensorBoard)."""
        self.path, self.mirror = path, mirror
        if resume_step is not None:
            truncate_metrics(path, resume_step)
        elif path.exists():
            path.unlink()
        self._file = path.open("a", encoding="utf-8")
        self.last: dict[str, dict[str, Any]] = {}  # newest row of each kind (train, val): the progress line

    def write(self, row: dict[str, Any]) -> None:
        self.last[str(row.get("kind"))] = row
        self._file.write(json.dumps(_finite(row)) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        if self.mirror is not None:
            self.mirror.write(_finite(row))

    def close(self) -> None:
        self._file.close()
        if self.mirror is not None:
            self.mirror.close()


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop rows with step > `last_step` (logged after the resumed checkpoint) and any torn line."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if int(row.get("step", 0)) <= last_step:
            keep.append(line)
    from scaling.atomic import write_text_atomic

    write_text_atomic(path, "".join(f"{line}\n" for line in keep))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    write_json_atomic(run_dir / SUMMARY, _finite(summary))


def environment_info(world_size: int, device_name: str) -> dict[str, Any]:
    """Code version and software/hardware of a run (written before step 0)."""
    import platform
    import subprocess
    from importlib import metadata

    versions = {}
    for pkg in ("torch", "deepspeed", "mamba-ssm", "numpy", "h5py"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        repo = Path(__file__).resolve().parents[2]
        code = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=repo,
                              capture_output=True, text=True, timeout=10).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        code = None
    return {"code_version": code, "versions": versions, "python": platform.python_version(),
            "host": platform.node(), "world_size": world_size, "device": device_name,
            "time": now_iso()}  # fmt: skip
