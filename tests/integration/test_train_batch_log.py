"""A training run as a batch job sees it: stdout and stderr are files, not a terminal.

The rank-0 log (the Slurm log) gets a progress line every `logging.progress_interval` steps, and everything
the run writes (dataset, config, status, metrics, checkpoints, summary) is readable by collaborators: 0644
files and 0755 folders under umask 022.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_progress_lines_in_a_non_terminal_log_and_shared_file_modes(tmp_path: Path) -> None:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    log_path = tmp_path / "slurm-1.out"
    cmd = [sys.executable, "-m", "scaling.train", "scaling/train/configs/tiny_cpu.yaml",
           f"data.dataset_dir={tmp_path / 'data'}", "budget.steps=10", "logging.progress_interval=4",
           "--run-dir", str(tmp_path / "run")]  # fmt: skip
    with log_path.open("w") as log:
        done = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=300,
                              umask=0o022)  # fmt: skip
    text = log_path.read_text()
    assert done.returncode == 0, text[-3000:]
    lines = [line for line in text.splitlines() if re.search(r"step \d+/10  loss", line)]
    # steps 4 and 8 (the interval) and 10 (the last), whatever logging.interval is
    assert [re.search(r"step (\d+)/10", line).group(1) for line in lines] == ["4", "8", "10"], text[-3000:]
    assert all(re.search(r"[\d,]+ tok/s  mfu -  eta \d+m\d\ds$", line) for line in lines), lines
    assert lines[-1].endswith("eta 0m00s")
    for root in (tmp_path / "run", tmp_path / "data"):
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            # DeepSpeed copies its zero_to_fp32.py script with the execute bits: 0744, still readable
            want = 0o755 if path.is_dir() else 0o644 | (mode & 0o100)
            assert mode == want, f"{path}: {oct(mode)}"
