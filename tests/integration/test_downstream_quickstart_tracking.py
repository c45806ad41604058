"""The quickstart's tracking adapter does not collapse: with the settings of sweeps/quickstart_downstream.yaml
(read from the file), on simulated events of the quickstart's profile, it predicts at least 3 tracks per event
on average where the truth holds at least 3 (at 30 steps of 4 events it predicted ~1: one query took every
point)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from analysis.downstream.run import run_downstream
from analysis.downstream.train import DownstreamConfig
from launch.axes import flatten_set
from scaling.config import load_config

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


def _quickstart_tracking_keys() -> list[str]:
    """base + the tracking overrides of the quickstart's downstream sweep, as key=value overrides."""
    spec = yaml.safe_load((REPO / "sweeps" / "quickstart_downstream.yaml").read_text())
    keys = flatten_set(DownstreamConfig, spec["base"], "base", "quickstart_downstream.yaml")
    for rule in spec.get("overrides", []):
        if rule["when"] == {"task": "tracking"}:
            keys.update(flatten_set(DownstreamConfig, rule["set"], "overrides", "quickstart_downstream.yaml"))
    skip = {"dataset", "cache_dir", "n_train_events", "n_eval_events", "eval_split", "train_split"}
    return [f"{k}={v}" for k, v in keys.items() if k not in skip]


def test_quickstart_tracking_predicts_at_least_three_tracks_per_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "scaling.data", "simulate", "--out", str(data),
                          "--events", "112", "--seed", "5", "--splits", "train=96,val=16",
                          "--profile", "small"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    keys = [*_quickstart_tracking_keys(), "task=tracking", f"dataset={data}", "eval_split=val",
            "n_train_events=96", "n_eval_events=16", "cache_dir="]  # fmt: skip
    cfg = load_config(DownstreamConfig, None, keys)
    assert cfg.budget.steps * cfg.budget.batch_events >= 800  # the quickstart trains it, not a shortened copy
    m = run_downstream(cfg, tmp_path / "run")["metrics"]
    assert m["true_tracks_per_event"] >= 3
    assert m["pred_tracks_per_event"] >= 3, m
