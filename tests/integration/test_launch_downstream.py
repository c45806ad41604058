"""A tiny downstream sweep over the runs of a tiny pretraining sweep, through the launcher's local executor:
refused before its dependency is done, then every run completed with the downstream entry point, an
idempotent rerun, and a truthful --status."""

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


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def specs(tmp: Path) -> tuple[Path, Path]:
    pre = {
        "name": "pre",
        "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"),
        "overrides": {
            "data.dataset_dir": str(tmp / "data"),
            "data.simulate_if_missing.train_events": 32,
            "data.simulate_if_missing.val_events": 8,
            "data.val_events": 4,
            "budget.steps": 6,
            "budget.val_interval": 3,
            "model.name": "custom",
            "model.headdim": 16,
        },
        "axes": {"grid": {"model.width": [16]}},
        "resources": {"default": {"mem_gb": 1, "hours": 0.1}},
        "site": "local",
        "runs_dir": str(tmp / "runs"),
    }
    ds = {
        "name": "ds",
        "entry": "analysis.downstream",
        "config_class": "analysis.downstream.train.DownstreamConfig",
        "depends_on": "pre",
        "base": {
            "dataset": str(tmp / "data"),
            "eval_split": "val",
            "n_train_events": 16,
            "n_eval_events": 8,
            "cache_dir": str(tmp / "runs/ds-cache"),
            "device": "cpu",
            "adapter": {"d_proj": 16, "n_heads": 2, "mlp_hidden": 16},
            "budget": {"steps": 6, "batch_events": 4},
            "schedule": {"warmup_steps": 2},
        },
        "axes": {"backbone": {"runs_of": "pre", "plus": ["adapter_only"]}, "task": ["pid"]},
        "overrides": [{"when": {"backbone": "adapter_only"}, "set": {"stem_width": 8}}],
        "run_name": "{task}-{backbone_name}",
        "resources": {"default": {"mem_gb": 1, "hours": 0.1}},
        "site": "local",
        "runs_dir": str(tmp / "runs"),
        "executor": {"max_parallel": 2},
    }
    return write(tmp / "pre.yaml", pre), write(tmp / "ds.yaml", ds)


def test_downstream_sweep_over_pretraining_runs(tmp_path: Path) -> None:
    pre, ds = specs(tmp_path)
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}

    def launch(spec: Path, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(REPO / "launch/sweep.py"), str(spec), "--executor", "local", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)

    early = launch(ds)
    assert early.returncode == 2 and early.stderr.count("\n") == 1, early.stdout + early.stderr
    assert "depends on pre: sweep pre has no runs" in early.stderr and not (tmp_path / "runs/ds").exists()
    assert launch(pre).returncode == 0

    first = launch(ds)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("submit (new)") == 2
    runs = tmp_path / "runs/ds"
    for name, backbone in (
        ("pid-width16", str(tmp_path / "runs/pre/width16")),
        ("pid-adapter_only", "adapter_only"),
    ):
        status = json.loads((runs / name / "status.json").read_text())
        assert status["state"] == "completed" and status["exit_code"] == 0, (
            runs / name / "launch.log"
        ).read_text()
        metrics = json.loads((runs / name / "metrics.json").read_text())
        assert metrics["task"] == "pid" and metrics["backbone"] == backbone
        assert metrics["n_train_events"] == 16 and 0.0 <= metrics["metrics"]["accuracy"] <= 1.0
    assert json.loads((runs / "pid-width16/metrics.json").read_text())["feature_width"] == 16
    assert yaml.safe_load((runs / "pid-adapter_only/config.yaml").read_text())["stem_width"] == 8

    again = launch(ds)
    assert again.stdout.count("skip (completed)") == 2 and "started" not in again.stdout
    table = launch(ds, "--status").stdout
    assert table.count("completed") >= 2 and "local-" in table  # job ids kept though the entry rewrote status
    assert "depends on pre: all runs completed" in table
