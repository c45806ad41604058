"""`mpirun -np 2 python -m scaling.train ...`: two ranks from Open MPI's variables train as one job, and
give bit for bit the run two processes started with torchrun's variables give."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.train.dist import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(400),
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs Open MPI's mpirun (make setup)"),
]
REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "scaling/train/configs/tiny_cpu.yaml"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
       "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
for _name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(_name, None)


def train_cmd(data: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "scaling.train", str(CONFIG), f"data.dataset_dir={data}", "budget.steps=8",
            "checkpoint.interval=4", "--run-dir", str(run_dir)]  # fmt: skip


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def test_mpirun_two_ranks_match_a_torchrun_style_launch(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mpi = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                          *train_cmd(data, tmp_path / "mpi")],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert mpi.returncode == 0, mpi.stdout[-3000:] + mpi.stderr[-3000:]
    info = json.loads((tmp_path / "mpi" / "environment.json").read_text())
    assert info["world_size"] == 2
    assert json.loads((tmp_path / "mpi" / "status.json").read_text())["state"] == "completed"

    port = str(free_port())
    procs = [subprocess.Popen(train_cmd(data, tmp_path / "tr"), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True,
                              env={**ENV, "RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r),
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port})
             for r in range(2)]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    got, want = losses(tmp_path / "mpi"), losses(tmp_path / "tr")
    assert len(got) == 8 and got == want  # same world size, same data split and seed: the same numbers
