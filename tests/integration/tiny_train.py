"""`python -m scaling.train` on the tiny CPU config as a user runs it: the integration tests' one launcher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scaling.train.dist import free_port

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "scaling/train/configs/tiny_cpu.yaml"


def tiny_command(
    run_dir: Path, data: Path, *overrides: str, difficulty_events: int = 16
) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of `train_tiny`, for a test that starts (and signals) the process itself."""
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               MASTER_PORT=str(free_port()), PYTHONPATH=str(REPO))  # fmt: skip
    cmd = [sys.executable, "-m", "scaling.train", str(CONFIG), f"data.dataset_dir={data}",
           "budget.steps=10", "budget.val_interval=5", f"data.difficulty_events={difficulty_events}",
           *overrides, "--run-dir", str(run_dir)]  # fmt: skip
    return cmd, env


def train_tiny(
    run_dir: Path, data: Path, *overrides: str, difficulty_events: int = 16
) -> subprocess.CompletedProcess:
    """10 steps (validated at 5 and 10) into `run_dir` on the dataset `data` (simulated when missing)."""
    cmd, env = tiny_command(run_dir, data, *overrides, difficulty_events=difficulty_events)
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
