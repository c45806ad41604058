"""`mpirun -np N python -m scaling.data simulate|import-tpcpp ... --mpi` with real Open MPI ranks: the same
bytes as one process, and a failed rank or too many ranks leave no manifest and one line of error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs Open MPI's mpirun (make setup)"),
]
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def data_cli(*args: str, ranks: int = 0) -> subprocess.CompletedProcess[str]:
    """`python -m scaling.data ARGS`, under `mpirun -np RANKS` when ranks > 0."""
    cmd = [sys.executable, "-m", "scaling.data", *args]
    if ranks:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *cmd, "--mpi"]
    return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=240)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_simulate_with_two_ranks_writes_the_bytes_of_one_process(tmp_path: Path) -> None:
    args = ["simulate", "--events", "120", "--seed", "7", "--shard-events", "16", "--profile", "small"]
    one = data_cli(*args, "--out", str(tmp_path / "one"))
    two = data_cli(*args, "--out", str(tmp_path / "two"), ranks=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    files = tree(tmp_path / "one")
    assert len(files) == 10  # 7 train shards + val + test + manifest
    assert tree(tmp_path / "two") == files
    assert two.stdout == one.stdout  # the same report, printed once


def test_import_tpcpp_with_two_ranks_writes_the_bytes_of_one_process(tmp_path: Path) -> None:
    src = tmp_path / "src"
    sim = ["--events", "90", "--seed", "2", "--profile", "small", "--format", "tpcpp", "--shard-events", "25"]
    made = data_cli("simulate", "--out", str(src), *sim, "--splits", "train=0.8,test=0.2")
    assert made.returncode == 0, made.stderr
    args = ["import-tpcpp", str(src), "--shard-events", "10"]  # shards cut across source files
    one = data_cli(*args, "--out", str(tmp_path / "one"))
    two = data_cli(*args, "--out", str(tmp_path / "two"), ranks=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert tree(tmp_path / "two") == tree(tmp_path / "one")


def test_a_failed_rank_leaves_no_manifest_and_names_the_shard(tmp_path: Path) -> None:
    out = tmp_path / "d"
    (out / "train" / ".shard-00003.h5.tmp").mkdir(parents=True)  # shard 3 (rank 1's) cannot be written
    run = data_cli("simulate", "--out", str(out), "--events", "64", "--shard-events", "16",
                   "--profile", "small", "--splits", "train=1", ranks=2)  # fmt: skip
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1, run.stderr
    assert "rank 1 failed writing shard train/shard-00003.h5" in ours[0] and "no manifest" in ours[0]
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("shard-*.h5"))  # rank 0's finished shards are removed too


def test_more_ranks_than_shards_is_one_line(tmp_path: Path) -> None:
    run = data_cli("simulate", "--out", str(tmp_path / "d"), "--events", "20", "--shard-events", "10",
                   "--profile", "small", "--splits", "train=1", ranks=3)  # fmt: skip
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert ours == ["error: --mpi: 3 ranks for 2 shards; start at most 2 ranks (mpirun -np 2) or lower "
                    "--shard-events"], run.stderr  # fmt: skip
    assert not (tmp_path / "d" / "manifest.json").exists()
