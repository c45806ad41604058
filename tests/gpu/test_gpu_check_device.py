"""The GPU check on a real GPU: every comparison within tolerance, throughputs and the table written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(900)]


def test_gpu_check_writes_the_table(tmp_path: Path) -> None:
    pytest.importorskip("mamba_ssm")
    from benchmarks.gpu_check import THROUGHPUT_MODELS, run_check

    result = run_check(tmp_path)
    assert all(c["passed"] for c in result["comparisons"]), result["comparisons"]
    assert [t["model"] for t in result["throughput"]] == list(THROUGHPUT_MODELS)
    assert all(0 < t["mfu"] < 1 for t in result["throughput"])  # a measured peak bounds the MFU
    assert json.loads((tmp_path / "gpu_check.json").read_text())["device"]["peak_tflops"] > 0
    assert "| m6 |" in (tmp_path / "gpu_check.md").read_text()
