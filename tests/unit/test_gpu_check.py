"""The GPU check's CPU-testable parts: what it plans, the GPU-hour arithmetic, the table, and the one-line
error without CUDA. The measurements themselves run in tests/gpu/test_gpu_check_device.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import (
    PAPER_GPU_HOURS,
    Throughput,
    extrapolate,
    main,
    mean_tokens_per_event,
    micro_batch_plan,
    paper_tokens,
    pipeline_events_per_s,
    plan_comparisons,
    render_markdown,
)


def test_plan_compares_three_shapes_in_both_dtypes() -> None:
    assert plan_comparisons() == [(m, d) for m in ("m1", "m3", "m5") for d in ("float32", "bfloat16")]


def test_micro_batches_shrink_with_width_and_halve_down_to_one() -> None:
    m1, m6 = micro_batch_plan("m1", 80, 4096), micro_batch_plan("m6", 80, 4096)
    assert m1[0] == 32 and m6[0] == 1 and m6 == [1]
    assert m1 == [32, 16, 8, 4, 2, 1]
    assert micro_batch_plan("m3", 141, 4096)[0] == 8  # more memory: a larger first try (14 -> 8)


def test_extrapolation_is_budget_over_rate_beside_table_1() -> None:
    assert PAPER_GPU_HOURS == {"m1": 10, "m2": 12, "m3": 80, "m4": 256, "m5": 1200, "m6": 4608}
    assert paper_tokens("m1", 1000.0) == 50_000 * 256 * 1000  # 50k steps for m1, m2
    assert paper_tokens("m4", 1000.0) == 100_000 * 256 * 1000  # 100k for m3-m6
    rate = 100_000 * 256 * 1000 / (3600 * 160.0)  # tokens/s that spend m3's budget in 160 h
    rows = extrapolate([Throughput(model="m3", micro_batch=8, seq_len=4096, tokens_per_s=rate, mfu=0.3)],
                       1000.0)  # fmt: skip
    assert rows[0]["gpu_hours"] == pytest.approx(160.0)
    assert rows[0]["paper_gpu_hours"] == 80 and rows[0]["ratio_to_paper"] == pytest.approx(2.0)
    assert rows[0]["paper_device"] == "4x A100"
    zero = extrapolate([Throughput(model="m1", micro_batch=1, seq_len=1, tokens_per_s=0.0, mfu=0.0)], 1.0)
    assert math.isinf(zero[0]["gpu_hours"])


def test_tokens_per_event_drops_events_the_paper_drops() -> None:
    mean = mean_tokens_per_event(n_events=40)
    assert 100 < mean <= 3200


def test_pipeline_measurement_runs_its_torch_backend_on_cpu_too() -> None:
    assert pipeline_events_per_s(n_events=4, device="cpu") > 0  # the same code path the GPU run takes


def test_markdown_table_names_the_device_and_every_model() -> None:
    rows = extrapolate([Throughput(model=m, micro_batch=1, seq_len=4096, tokens_per_s=1e6, mfu=0.25)
                        for m in ("m1", "m6")], 1500.0)  # fmt: skip
    result = {"device": {"name": "NVIDIA H200", "memory_gib": 139.8, "peak_tflops": 760.0},
              "tokens_per_event": 1500.0, "extrapolation": rows, "pipeline_events_per_s": 420.0,
              "comparisons": [{"model": "m1", "dtype": "bfloat16", "output_rel": 0.01, "grad_rel": 0.05,
                               "worst_grad": "layers.0.mixer.A_log", "passed": True}]}  # fmt: skip
    text = render_markdown(result)
    assert "NVIDIA H200 (140 GiB)" in text and "760 TFLOP/s" in text
    hours_m6 = 100_000 * 256 * 1500 / 1e6 / 3600
    assert f"| m6 | 1,000,000 | 25.0 % | {hours_m6:,.0f} | 4,608 | 64x A100 |" in text
    assert "| m1 | bfloat16 | 1.0e-02 | 5.0e-02 (layers.0.mixer.A_log) | yes |" in text
    assert "420 events/s" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error met without CUDA")
def test_without_cuda_it_is_one_line_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path / "check")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA device" in err and "srun --gpus 1" in err
    assert not (tmp_path / "check").exists()
