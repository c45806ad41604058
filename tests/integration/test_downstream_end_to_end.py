"""A real pretraining run (2 steps, DeepSpeed on CPU) -> frozen features -> adapter runs through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.data.shards import write_dataset
from tests.integration.test_downstream_cli import _events

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO)}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    splits = {"train": _events(12, 0), "val": _events(8, 1), "test": _events(4, 2),
              "pretrain": _events(4, 3, labelled=False)}  # fmt: skip
    write_dataset(root / "data", splits, shard_events=8, provenance={"source": "test"})
    res = _run("scaling.train", "--run-dir", str(root / "bb"), "scaling/train/configs/tiny_cpu.yaml",
               f"data.dataset_dir={root / 'data'}", "data.simulate_if_missing.enabled=false",
               "budget.steps=2", "checkpoint.interval=2", "budget.val_interval=2")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return {"root": root, "data": root / "data", "bb": root / "bb"}


def _downstream(s: dict[str, Path], name: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    return _run("analysis.downstream", "--run-dir", str(s["root"] / name), f"backbone={s['bb']}",
                f"dataset={s['data']}", f"cache_dir={s['root'] / 'cache'}", "n_train_events=6",
                "n_eval_events=4", "budget.steps=4", "adapter.n_queries=6", *overrides)  # fmt: skip


def test_frozen_backbone_runs_share_the_feature_cache(setup: dict[str, Path]) -> None:
    first = _downstream(setup, "noise", "task=noise", "expect_width=32", "expect_objective=knnn")
    assert first.returncode == 0, first.stderr[-2000:]
    result = json.loads((setup["root"] / "noise" / "metrics.json").read_text())
    assert result["feature_width"] == 32 and result["n_train_events"] == 6
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0 and result["train"]["events_per_s"] > 0
    assert json.loads((setup["root"] / "noise" / "status.json").read_text())["state"] == "completed"
    second = _downstream(setup, "tracking", "task=tracking", "n_train_events=4")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "feature cache hit" in second.stderr and "Reconstructed" not in second.stderr  # no weights read
    tracking = json.loads((setup["root"] / "tracking" / "metrics.json").read_text())["metrics"]
    assert {"ari_pooled", "ari_event_mean", "efficiency", "purity"} <= set(tracking)


def test_wrong_width_objective_or_unlabelled_split_exit_2(setup: dict[str, Path]) -> None:
    res = _downstream(setup, "w", "expect_width=256")
    assert res.returncode == 2 and "backbone width is 32, the downstream config expects 256" in res.stderr
    res = _downstream(setup, "o", "expect_objective=next_token")
    assert res.returncode == 2 and "pretrained with objective 'knnn'" in res.stderr
    res = _downstream(setup, "u", "train_split=pretrain", "n_train_events=4")
    assert res.returncode == 2 and "carries no labels" in res.stderr
    res = _downstream(setup, "s", "step=7")
    assert res.returncode == 2 and "no complete checkpoint at step 7" in res.stderr
