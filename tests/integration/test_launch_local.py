"""The local executor (no Slurm): two tiny real runs at once, statuses, an idempotent rerun, auto=local, a
changed config reported and rerun only on request, a 2-rank run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
REPO = Path(__file__).resolve().parents[2]


def test_local_sweep_runs_and_rerun_is_idempotent(tmp_path: Path) -> None:
    spec = {
        "name": "loc",
        "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"),
        "overrides": {
            "data.dataset_dir": str(tmp_path / "data"),
            "budget.steps": 12,
            "model.name": "custom",
            "model.headdim": 16,
        },
        "axes": {"grid": {"model.width": [16, 32]}},
        "resources": {"default": {"cpus_per_task": 1, "mem_gb": 1, "hours": 0.1}},
        "site": "local",
        "runs_dir": str(tmp_path / "runs"),
        "executor": {"max_parallel": 2},
        "post": ["python -m no_such_module_here x"],
    }
    path = tmp_path / "loc.yaml"
    path.write_text(yaml.safe_dump(spec))
    # a controller that does not answer: auto must choose local even though sbatch is installed
    env = {
        **os.environ,
        "SLURM_CONF": str(tmp_path / "none.conf"),
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, str(REPO / "launch/sweep.py"), str(path)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("submit (new)") == 2 and "skipped `no_such_module_here" in first.stdout
    for name in ("width16", "width32"):
        status = json.loads((tmp_path / "runs/loc" / name / "status.json").read_text())
        assert status["state"] == "completed" and status["attempts"] == 1
        assert status["job_ids"][0].startswith("local-")
    sweep = json.loads((tmp_path / "runs/loc/sweep.json").read_text())
    assert sweep["executor"] == "local" and set(sweep["runs"]) == {"width16", "width32"}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout.count("skip (completed)") == 2 and "started" not in again.stdout
    # the spec changes under completed runs: said per run, nothing reused silently or rerun unasked
    spec["overrides"]["optimizer.lr"] = 1e-3
    path.write_text(yaml.safe_dump(spec))
    changed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert changed.stdout.count("completed with a different config: optimizer.lr differs") == 2
    assert "use --rerun-changed" in changed.stdout and "started" not in changed.stdout
    assert yaml.safe_load((tmp_path / "runs/loc/width16/config.yaml").read_text())["optimizer"]["lr"] != 1e-3
    rerun = subprocess.run(
        [*cmd, "--rerun-changed", "--only", "width16"], env=env, capture_output=True, text=True, timeout=170
    )
    assert rerun.returncode == 0 and "rerun afresh" in rerun.stdout, rerun.stdout + rerun.stderr
    assert yaml.safe_load((tmp_path / "runs/loc/width16/config.yaml").read_text())["optimizer"]["lr"] == 1e-3
    assert json.loads((tmp_path / "runs/loc/width16/status.json").read_text())["state"] == "completed"
    assert len(list((tmp_path / "runs/loc/.superseded").glob("width16-*"))) == 1


def test_two_rank_run_under_local_executor(tmp_path: Path) -> None:
    """tasks_per_node: 2 starts two ranks (gloo) that train one run together to completion."""
    spec = {
        "name": "mr",
        "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"),
        "overrides": {
            "data.dataset_dir": str(tmp_path / "data"),
            "data.simulate_if_missing.train_events": 32,
            "data.simulate_if_missing.val_events": 8,
            "data.val_events": 4,
            "budget.steps": 6,
            "budget.val_interval": 3,
        },
        "axes": {"grid": {"seed": [0]}},
        "resources": {"default": {"tasks_per_node": 2, "cpus_per_task": 1, "mem_gb": 2, "hours": 0.1}},
        "site": "local",
        "runs_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "mr.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "launch/sweep.py"), str(path), "--executor", "local"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    run = tmp_path / "runs/mr/seed0"
    assert done.returncode == 0, done.stdout + done.stderr + (run / "launch.log").read_text()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["attempts"] == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
