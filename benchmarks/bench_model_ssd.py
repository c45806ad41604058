"""Chunked SSD vs the step-by-step recurrence, and reference-model throughput (CPU; GPU section with CUDA).

    .venv/bin/python benchmarks/bench_model_ssd.py          # quick (< 60 s)
    .venv/bin/python benchmarks/bench_model_ssd.py --full   # more repeats, more chunk sizes

1. SSD forward+backward at 2048 tokens, d_model 256 (d_inner 512, 8 heads of 64, d_state 128): chunked
   (float32, as trained) vs the step-by-step recurrence (float32, same numbers): time and speed ratio.
2. Forward+backward tokens/s of the whole reference model m1 (12 layers) at a few chunk sizes.
3. With CUDA and mamba_ssm: max error of mamba_ssm's kernels vs the reference path (m3, float32), and
   tokens/s and MFU of forward+backward for m3 and m5 in bf16 (MFU = flops_per_token * tokens/s / peak).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F

from benchmarks.timing import timed
from scaling.model import ModelConfig, build_model, resolve_model_config
from scaling.model.flops import flops_per_token
from scaling.model.ssd import ssd_chunked, ssd_recurrence

# Dense bf16 peak (vendor data sheets): used only for MFU; override with --peak-tflops.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def _ssd_inputs(length: int, device: str = "cpu") -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(0)
    h, p, n = 8, 64, 128  # d_model 256: d_inner 512 = 8 heads x 64
    x = torch.randn(1, length, h, p, generator=g, device=device)
    dt = F.softplus(torch.randn(1, length, h, generator=g, device=device) - 3)
    A = -torch.rand(h, generator=g, device=device) * 15 - 1
    B = torch.randn(1, length, 1, n, generator=g, device=device)
    C = torch.randn(1, length, 1, n, generator=g, device=device)
    D = torch.ones(h, device=device)
    return [t.requires_grad_() for t in (x, dt, A, B, C, D)]


def bench_ssd(length: int, chunk: int, repeats: int) -> None:
    inputs = _ssd_inputs(length)
    chunked_s = timed(lambda: ssd_chunked(*inputs, chunk_size=chunk).square().sum().backward(), repeats)
    # the recurrence is slow (one token at a time): timed once, without a warm-up run
    recurrence_s = timed(lambda: ssd_recurrence(*inputs).square().sum().backward(), 1, warmup=False)
    print(f"SSD fwd+bwd, {length} tokens, d_model 256, d_state 128 (CPU, float32):")
    print(f"  chunked (Q={chunk}): {chunked_s * 1e3:8.1f} ms   recurrence: {recurrence_s * 1e3:8.1f} ms   "
          f"speed ratio {recurrence_s / chunked_s:.1f}x")  # fmt: skip


def bench_model(name: str, chunks: list[int], length: int, repeats: int, device: str = "cpu",
                dtype: torch.dtype = torch.float32) -> list[float]:  # fmt: skip
    rates = []
    for chunk in chunks:
        cfg = resolve_model_config(ModelConfig(name=name, chunk_size=chunk, impl="reference"))
        model = build_model(cfg, out_dim=90, device=device)
        x = torch.rand(1, length, 4, device=device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def step(model: torch.nn.Module = model, x: torch.Tensor = x) -> None:
            with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                model(x).float().square().mean().backward()

        seconds = timed(step, repeats, sync)
        rates.append(length / seconds)
        print(f"  {name} reference fwd+bwd, Q={chunk:4d}: {length / seconds:8.0f} tokens/s")
    return rates


def bench_gpu(length: int, peak_tflops: float | None) -> None:
    from scaling.model.mamba2 import mamba_ssm_available

    if not mamba_ssm_available():
        print("GPU section: mamba_ssm not importable on this CUDA machine; skipped")
        return
    name = torch.cuda.get_device_name()
    peak = peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    torch.manual_seed(0)
    ref = build_model(resolve_model_config(ModelConfig(name="m3", impl="reference")), 90, device="cuda")
    fused = build_model(resolve_model_config(ModelConfig(name="m3", impl="mamba_ssm")), 90, device="cuda")
    fused.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(2, length, 4, device="cuda")
    seq_idx = (torch.arange(length, device="cuda") * 3 // length).to(torch.int32).expand(2, -1).contiguous()
    with torch.no_grad():
        a, b = ref(x, seq_idx), fused(x, seq_idx)
    print(f"GPU ({name}): m3 mamba_ssm vs reference, float32, packed: max |diff| {(a - b).abs().max():.2e} "
          f"(max |y| {a.abs().max():.2e})")  # fmt: skip
    for model_name in ("m3", "m5"):
        cfg = resolve_model_config(ModelConfig(name=model_name, impl="mamba_ssm"))
        model = build_model(cfg, 90, device="cuda")
        tokens = 8 * length
        xb = torch.rand(8, length, 4, device="cuda")

        def step(model: torch.nn.Module = model, xb: torch.Tensor = xb) -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                model(xb).float().square().mean().backward()

        seconds = timed(step, 5, torch.cuda.synchronize)
        rate = tokens / seconds
        mfu = flops_per_token(cfg, 90, length) * rate / (peak * 1e12) if peak else float("nan")
        print(f"  {model_name} mamba_ssm bf16 fwd+bwd: {rate:12.0f} tokens/s  MFU {100 * mfu:.1f} % "
              f"(peak {peak} TFLOP/s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="more repeats and chunk sizes")
    parser.add_argument("--peak-tflops", type=float, default=None, help="accelerator peak for MFU")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    repeats = 5 if args.full else 2
    bench_ssd(2048, 64, repeats)
    chunks = [32, 64, 128, 256] if args.full else [64, 128, 256]
    print(f"Reference model, batch 1 x 2048 tokens, CPU, {torch.get_num_threads()} thread(s):")
    rates = bench_model("m1", chunks, 2048, 1 if not args.full else 3)
    print(f"  best/worst chunk speed ratio {max(rates) / min(rates):.2f}x")
    if torch.cuda.is_available():
        bench_gpu(4096, args.peak_tflops)
    else:
        print("GPU section: no CUDA device; skipped")


if __name__ == "__main__":
    main()
