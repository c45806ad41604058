"""`python -m analysis.downstream` as a process on a real sharded HDF5 dataset: bad input exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scaling.data.schema import Event
from scaling.data.shards import write_dataset

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _events(n: int, seed: int, labelled: bool = True) -> list[Event]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(20, 40))
        r = rng.uniform(30, 78, k)
        phi = rng.uniform(-np.pi, np.pi, k)
        pts = np.stack(
            [rng.uniform(50, 500, k), r * np.cos(phi), r * np.sin(phi), rng.uniform(-100, 100, k)], 1
        )
        tid = rng.integers(0, 4, k) if labelled else np.full(k, -1)
        out.append(Event(points=pts.astype(np.float32), track_id=tid.astype(np.int64),
                         pid=rng.integers(0, 5, k).astype(np.int8), noise=np.zeros(k, np.uint8)))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    splits = {"train": _events(6, 0), "test": _events(3, 1), "unlabelled": _events(3, 2, labelled=False)}
    write_dataset(root, splits, shard_events=4, provenance={"source": "test"})
    return root


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "analysis.downstream", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_budget_larger_than_split_exits_2_with_one_line(dataset: Path, tmp_path: Path) -> None:
    res = _cli("--run-dir", str(tmp_path / "r"), f"dataset={dataset}", "n_train_events=50", "n_eval_events=2")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: n_train_events=50 exceeds the 6 events")
    assert "Traceback" not in res.stderr


def test_missing_split_and_bad_key_exit_2(dataset: Path, tmp_path: Path) -> None:
    small = ("n_train_events=4", "n_eval_events=2")
    res = _cli("--run-dir", str(tmp_path / "r"), f"dataset={dataset}", "eval_split=validation", *small)
    assert res.returncode == 2 and "no split 'validation'" in res.stderr
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "failed" and "no split 'validation'" in status["reason"]
    res = _cli("--run-dir", str(tmp_path / "r"), f"dataset={dataset}", "adapter.width=3")
    assert res.returncode == 2 and "unknown key 'adapter.width'" in res.stderr
    res = _cli("--run-dir", str(tmp_path / "r"), "dataset=" + str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "no manifest" in res.stderr


def test_help_keys_lists_documented_fields() -> None:
    res = _cli("--help-keys")
    assert res.returncode == 0 and "n_train_events" in res.stdout and "adapter.n_queries" in res.stdout
