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


def test_dataset_error_is_exit_2_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sim = [sys.executable, "-m", "scaling.data", "simulate", "--out", str(data), "--events", "24",
           "--splits", "train=0.5,val=0.5", "--profile", "small"]  # fmt: skip
    subprocess.run(sim, cwd=REPO, check=True, capture_output=True, timeout=120)
    # the config asks for a split the dataset does not have (the old default, `validation`)
    out = cli(tmp_path / "run", f"data.dataset_dir={data}", "data.simulate_if_missing.enabled=false",
              "data.val_split=validation")  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    (line,) = [x for x in out.stderr.splitlines() if "validation" in x]
    assert "data.val_split=validation: " in line and "has no such split (has train, val)" in line
    assert line.endswith("set data.val_split to one of those")
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["exit_code"] == 2  # deterministic: never resubmitted
