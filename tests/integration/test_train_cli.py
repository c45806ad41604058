"""`python -m scaling.train` as a user runs it: a model config that cannot be built is exit 2, one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "scaling/train/configs/tiny_cpu.yaml"


def cli(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "scaling.train", str(CONFIG), *overrides, "--run-dir", str(run_dir)]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("overrides", "key", "fix"),
    [
        (
            ("model.name=m3", "model.width=128"),
            "model.width=128",
            "drop model.width or use model.name=custom",
        ),
        (("model.name=custom", "model.width=100"), "model.headdim=64 must divide", "change model.width"),
    ],
    ids=["name-width", "heads"],
)
def test_model_config_error_is_exit_2_with_one_line(tmp_path: Path, overrides, key: str, fix: str) -> None:
    out = cli(tmp_path / "run", *overrides)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and fix in lines[0] and str(CONFIG) in lines[0]
    assert "Traceback" not in out.stderr
    assert json.loads((tmp_path / "run" / "status.json").read_text())["exit_code"] == 2


def test_mamba_ssm_impl_without_cuda_is_exit_2(tmp_path: Path) -> None:
    out = cli(tmp_path / "run", "model.impl=mamba_ssm")
    assert out.returncode == 2, out.stderr
    assert "model.impl=mamba_ssm" in out.stderr and "model.impl=auto or reference" in out.stderr
    assert "Traceback" not in out.stderr
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["exit_code"] == 2
