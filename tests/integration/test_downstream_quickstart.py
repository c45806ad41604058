"""The quickstart's miniature downstream sweep, by hand: a backbone run made the quickstart's way (the trainer
simulates train + validation splits itself), downstream runs from config files below `<sweep>/downstream/`,
and `python -m analysis.report <sweep>/` picking their results up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scaling.train.dist import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


# These runs say they are rank 0 of 1 on a port free now, whatever else trains on this machine.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO),
       "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
       "MASTER_PORT": str(free_port())}  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("qs")
    sim = "{enabled: true, train_events: 12, val_events: 8, profile: small, shard_events: 8}"
    res = _run("scaling.train", "scaling/train/configs/tiny_cpu.yaml", f"data.dataset_dir={root / 'data'}",
               f"data.simulate_if_missing={sim}", "budget.steps=2", "checkpoint.interval=2",
               "budget.val_interval=2", "--run-dir", str(root / "quickstart" / "width32"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "quickstart"


def _downstream(
    sweep: Path, task: str, name: str = "", **extra: object
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A run the way the launcher makes one: <run>/config.yaml, then the CLI on it."""
    run_dir = sweep / "downstream" / (name or f"{task}-width32-8-s0")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "backbone": str(sweep / "width32"), "task": task, "dataset": str(sweep.parent / "data"),
        "eval_split": "val", "n_train_events": 8, "n_eval_events": 4,
        "cache_dir": str(sweep / "downstream" / "feature-cache"),
        "adapter": {"d_proj": 16, "mlp_hidden": 32, "n_queries": 40, "n_decoder_layers": 1,
                    "loss": "ce" if task == "tracking" else "weighted_ce"},
        "budget": {"steps": 3, "batch_events": 4}, "schedule": {"warmup_steps": 1}, **extra,
    }  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir, _run("analysis.downstream", str(run_dir / "config.yaml"), "--run-dir", str(run_dir))


def test_quickstart_backbone_and_dataset_feed_the_cli_and_the_report(sweep: Path) -> None:
    for task in ("pid", "tracking"):
        run_dir, res = _downstream(sweep, task)
        assert res.returncode == 0, res.stderr[-2000:]
        assert (run_dir / "metrics.json").is_file()
    out = sweep / "report"
    res = _run("analysis.report", str(sweep), "--out", str(out), "--bootstrap", "5")
    assert res.returncode == 0, res.stderr[-2000:]
    text = (out / "report.md").read_text()
    assert "## Downstream tasks" in text and "Particle identification (Table 5)" in text
    assert (out / "downstream_vs_backbone.png").is_file() and (out / "tracking_ari_vs_labels.png").is_file()
    assert "| width32 |" in text and "| downstream |" not in text  # nested runs are not training runs


def test_quickstart_dataset_has_no_test_split_clear_error(sweep: Path) -> None:
    _, res = _downstream(sweep, "pid", name="no-test-split", eval_split="test")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no split 'test' (has train, val)" in res.stderr.strip().splitlines()[-1]
