"""One-command GPU check: mamba-ssm vs the reference path, bf16 throughput and MFU, GPU-hours vs the paper.

    python -m benchmarks.gpu_check --out runs/gpu-check          # one GPU, under 8 minutes
    make gpu-check                                               # the same, into runs/gpu-check

On one CUDA device it
  1. compares mamba_ssm's fused Mamba-2 with the pure-torch reference on the same weights (forward output and
     every parameter gradient, float32 and bf16, packed events) for the m1, m3 and m5 shapes;
  2. measures the device's bf16 matmul peak (a large square matmul, not a data sheet), then bf16 training
     tokens/s (forward, backward, AdamW step) and MFU for m1-m6 at micro-batches that fit;
  3. measures the input pipeline with k-NNN targets on the GPU (`target_backend=torch`) in events/s;
  4. extrapolates each model's paper token budget (steps x 256 events x tokens per event) to GPU-hours on
     this device, beside the paper's Table 1 (10, 12, 80, 256, 1200, 4608 GPU-hours);
and writes `gpu_check.json` and `gpu_check.md` (a table the report can include) into --out.

The planning, the extrapolation and the table are plain functions, tested on CPU (tests/unit/
test_gpu_check.py); the measurements are tested on a GPU (marked `gpu`). Without CUDA or mamba_ssm the
command stops with one line naming the fix.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.timing import timed

# Paper (FM4NPP), Table 1: GPUs x hours of pretraining. m1, m2 on one H100; m3-m6 on 4/8/24/64 A100.
PAPER_GPU_HOURS = {"m1": 10.0, "m2": 12.0, "m3": 80.0, "m4": 256.0, "m5": 1200.0, "m6": 4608.0}
PAPER_DEVICE = {"m1": "1x H100", "m2": "1x H100", "m3": "4x A100", "m4": "8x A100", "m5": "24x A100",
                "m6": "64x A100"}  # fmt: skip
PAPER_STEPS = {"m1": 50_000, "m2": 50_000, "m3": 100_000, "m4": 100_000, "m5": 100_000, "m6": 100_000}
PAPER_BATCH_EVENTS = 256
PAPER_MAX_POINTS = 3200  # the paper's code drops longer events
OUT_DIM = 90  # k-NNN head, k = 30: 3 coordinates per neighbour
# Relative tolerances (max |fused - reference| / max |reference|): the fused kernels use TF32 matmuls in
# float32; in bf16 both paths round activations to 8 mantissa bits, and the gradients sum many of them.
TOLERANCE = {"float32": {"output": 2e-3, "grad": 1e-2}, "bfloat16": {"output": 3e-2, "grad": 8e-2}}
COMPARE_MODELS = ("m1", "m3", "m5")
THROUGHPUT_MODELS = ("m1", "m2", "m3", "m4", "m5", "m6")
EXIT_USAGE = 2


@dataclass(frozen=True, kw_only=True)
class Comparison:
    model: str
    dtype: str
    output_rel: float
    grad_rel: float
    worst_grad: str
    passed: bool


@dataclass(frozen=True, kw_only=True)
class Throughput:
    model: str
    micro_batch: int
    seq_len: int
    tokens_per_s: float
    mfu: float


def plan_comparisons() -> list[tuple[str, str]]:
    """(model, dtype) pairs the check compares, each against its TOLERANCE."""
    return [(m, d) for m in COMPARE_MODELS for d in TOLERANCE]


def micro_batch_plan(model: str, memory_gib: float, seq_len: int) -> list[int]:
    """Micro-batches (sequences of seq_len tokens) to try, largest first: activations of the reference-size
    models grow with width, so the first guess scales as 1 / width from 32 sequences of 4096 tokens at
    width 64 on 80 GiB; each smaller one is tried after an out-of-memory error."""
    from scaling.model.family import MODEL_FAMILY

    width = MODEL_FAMILY[model]["width"]
    guess = 32 * (64 / width) * (memory_gib / 80.0) * (4096 / seq_len)
    first = max(1, 2 ** int(math.floor(math.log2(max(guess, 1.0)))))
    return [first >> i for i in range(first.bit_length())]


def paper_tokens(model: str, tokens_per_event: float) -> float:
    """Tokens of the model's paper pretraining budget: steps x 256 events x tokens per event."""
    return PAPER_STEPS[model] * PAPER_BATCH_EVENTS * tokens_per_event


def extrapolate(throughputs: list[Throughput], tokens_per_event: float) -> list[dict[str, Any]]:
    """Per model: GPU-hours of its paper budget on this device at the measured tokens/s (ideal data
    parallelism: N GPUs take 1/N of the hours), beside Table 1."""
    rows = []
    for t in throughputs:
        tokens = paper_tokens(t.model, tokens_per_event)
        hours = tokens / t.tokens_per_s / 3600.0 if t.tokens_per_s > 0 else math.inf
        rows.append({"model": t.model, "paper_tokens": tokens, "tokens_per_s": t.tokens_per_s, "mfu": t.mfu,
                     "gpu_hours": hours, "paper_gpu_hours": PAPER_GPU_HOURS[t.model],
                     "paper_device": PAPER_DEVICE[t.model],
                     "ratio_to_paper": hours / PAPER_GPU_HOURS[t.model]})  # fmt: skip
    return rows


def mean_tokens_per_event(n_events: int = 200, seed: int = 0) -> float:
    """Mean spacepoints per event of the simulator's paper profile, events over PAPER_MAX_POINTS dropped
    (as the paper's code does): the tokens one event costs."""
    from scaling.data.simulator import simulate_events

    sizes = [e.n_points for e in simulate_events(n_events, seed)]
    kept = [n for n in sizes if n <= PAPER_MAX_POINTS]
    return sum(kept) / max(len(kept), 1)


def render_markdown(result: dict[str, Any]) -> str:
    """The report's table: measured tokens/s, MFU and extrapolated GPU-hours beside Table 1."""
    dev = result["device"]
    lines = [
        f"GPU check on {dev['name']} ({dev['memory_gib']:.0f} GiB), measured bf16 matmul peak "
        f"{dev['peak_tflops']:.0f} TFLOP/s; {result['tokens_per_event']:.0f} tokens per event.",
        "",
        "| model | tokens/s (bf16) | MFU | GPU-hours, paper budget | paper (Table 1) | paper GPUs | ratio |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for row in result["extrapolation"]:
        lines.append(
            f"| {row['model']} | {row['tokens_per_s']:,.0f} | {100 * row['mfu']:.1f} % | "
            f"{row['gpu_hours']:,.0f} | {row['paper_gpu_hours']:,.0f} | {row['paper_device']} | "
            f"{row['ratio_to_paper']:.2f} |"
        )
    lines += ["", "| model | dtype | output rel. error | worst gradient rel. error | within tolerance |",
              "| --- | --- | ---: | --- | --- |"]  # fmt: skip
    for c in result["comparisons"]:
        lines.append(f"| {c['model']} | {c['dtype']} | {c['output_rel']:.1e} | {c['grad_rel']:.1e} "
                     f"({c['worst_grad']}) | {'yes' if c['passed'] else 'NO'} |")  # fmt: skip
    if result.get("pipeline_events_per_s") is not None:
        lines += ["", f"Input pipeline with k-NNN targets on the GPU (target_backend=torch): "
                      f"{result['pipeline_events_per_s']:.0f} events/s (one process)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def require_gpu() -> None:
    """One-line ValueError unless a CUDA device and mamba_ssm are both usable."""
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            "gpu_check needs a CUDA device and torch.cuda.is_available() is False here; run it on a GPU "
            "node (e.g. srun --gpus 1 python -m benchmarks.gpu_check --out DIR) with a CUDA build of torch"
        )
    from scaling.model.mamba2 import mamba_ssm_available

    if not mamba_ssm_available():
        raise ValueError(
            "gpu_check compares against mamba_ssm, which is not importable; install it with "
            "`pip install -e '.[gpu]'` on the GPU machine"
        )


def _timed_cuda(fn: Callable[[], None], repeats: int, device: str = "cuda") -> float:
    import torch

    return timed(fn, repeats, torch.cuda.synchronize if device == "cuda" else (lambda: None))


def measure_peak_tflops(n: int = 8192, repeats: int = 20) -> float:
    """bf16 dense matmul TFLOP/s of this device (2 n^3 per product)."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    seconds = _timed_cuda(lambda: torch.mm(a, b), repeats)
    return 2 * n**3 / seconds / 1e12


def _packed_input(batch: int, lengths: list[int], device: str) -> tuple[Any, Any]:
    import torch

    x = torch.rand(batch, sum(lengths), 4, device=device)
    seq = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(device, torch.int32)
    return x, seq.expand(batch, -1).contiguous()


def compare(model: str, dtype: str, seq_len: int = 2048) -> Comparison:
    """mamba_ssm vs reference on the same weights: output and every parameter gradient (relative)."""
    import torch

    from scaling.model import ModelConfig, build_model, resolve_model_config

    torch.manual_seed(0)
    ref = build_model(resolve_model_config(ModelConfig(name=model, impl="reference")), OUT_DIM, device="cuda")
    fused = build_model(
        resolve_model_config(ModelConfig(name=model, impl="mamba_ssm")), OUT_DIM, device="cuda"
    )
    fused.load_state_dict(ref.state_dict(), strict=True)
    x, seq_idx = _packed_input(2, [seq_len // 2, seq_len // 4, seq_len // 4], "cuda")
    cast = dict(dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    outs = []
    for net in (ref, fused):
        with torch.autocast("cuda", **cast):
            y = net(x, seq_idx).float()
        y.square().mean().backward()
        outs.append(y.detach())
    output_rel = float((outs[1] - outs[0]).abs().max() / outs[0].abs().max())
    fused_params = dict(fused.named_parameters())
    worst, worst_name = 0.0, ""
    for name, p in ref.named_parameters():
        g_ref, g_fused = p.grad, fused_params[name].grad
        rel = float((g_fused - g_ref).abs().max() / g_ref.abs().max().clamp_min(1e-30))
        if rel > worst:
            worst, worst_name = rel, name
    tol = TOLERANCE[dtype]
    return Comparison(model=model, dtype=dtype, output_rel=output_rel, grad_rel=worst, worst_grad=worst_name,
                      passed=output_rel <= tol["output"] and worst <= tol["grad"])  # fmt: skip


def throughput(model: str, peak_tflops: float, seq_len: int = 4096, repeats: int = 5) -> Throughput:
    """bf16 training tokens/s (forward, backward, fused AdamW) at the largest micro-batch that fits."""
    import torch

    from scaling.model import ModelConfig, build_model, resolve_model_config
    from scaling.model.flops import flops_per_token

    cfg = resolve_model_config(ModelConfig(name=model, impl="mamba_ssm"))
    memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    net = build_model(cfg, OUT_DIM, device="cuda")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    for batch in micro_batch_plan(model, memory_gib, seq_len):
        x, seq_idx = _packed_input(batch, [seq_len // 2, seq_len // 4, seq_len // 4], "cuda")

        def step(x: Any = x, seq_idx: Any = seq_idx) -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = net(x, seq_idx).float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        try:
            seconds = _timed_cuda(step, repeats)
        except torch.cuda.OutOfMemoryError:
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            continue
        rate = batch * seq_len / seconds
        mfu = flops_per_token(cfg, OUT_DIM, seq_len) * rate / (peak_tflops * 1e12)
        return Throughput(model=model, micro_batch=batch, seq_len=seq_len, tokens_per_s=rate, mfu=mfu)
    raise RuntimeError(f"{model}: even one sequence of {seq_len} tokens does not fit on this GPU")


def pipeline_events_per_s(n_events: int = 200, device: str = "cuda") -> float:
    """Events/s of simulate-free preparation (coordinates, serialisation, k-NNN targets on the GPU)."""
    from scaling.data.simulator import simulate_events
    from scaling.data.stats import StatsAccumulator
    from scaling.inputs import Normalizer, prepare_event
    from scaling.objectives import ObjectiveConfig, build_objective

    events = [e for e in simulate_events(n_events, 1) if e.n_points <= PAPER_MAX_POINTS]
    acc = StatsAccumulator()
    for e in events:
        acc.add(e.points)
    norm = Normalizer.from_stats(acc.finish())
    obj = build_objective(ObjectiveConfig(name="knnn", k=30, target_backend="torch", target_device=device))

    def prepare_all() -> None:
        for e in events:
            prepare_event(e, normalizer=norm, serialization="raster", objective=obj)

    return len(events) / _timed_cuda(prepare_all, 1, device)


def run_check(out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every measurement, logged as it goes; writes gpu_check.json and gpu_check.md into `out`."""
    import torch

    require_gpu()
    props = torch.cuda.get_device_properties(0)
    peak = measure_peak_tflops()
    log(f"device {props.name}: measured bf16 matmul peak {peak:.0f} TFLOP/s")
    comparisons = []
    for model, dtype in plan_comparisons():
        comparisons.append(compare(model, dtype))
        c = comparisons[-1]
        log(f"compare {model} {dtype}: output {c.output_rel:.1e}, gradients {c.grad_rel:.1e} "
            f"({'ok' if c.passed else 'OUT OF TOLERANCE'})")  # fmt: skip
    throughputs = []
    for model in THROUGHPUT_MODELS:
        throughputs.append(throughput(model, peak))
        t = throughputs[-1]
        log(f"throughput {model}: {t.tokens_per_s:,.0f} tokens/s, MFU {100 * t.mfu:.1f} % "
            f"(micro-batch {t.micro_batch} x {t.seq_len})")  # fmt: skip
    events_per_s = pipeline_events_per_s()
    log(f"input pipeline (target_backend=torch): {events_per_s:.0f} events/s")
    tokens_per_event = mean_tokens_per_event()
    result = {
        "device": {"name": props.name, "memory_gib": props.total_memory / 2**30, "peak_tflops": peak},
        "tokens_per_event": tokens_per_event,
        "comparisons": [asdict(c) for c in comparisons],
        "throughput": [asdict(t) for t in throughputs],
        "pipeline_events_per_s": events_per_s,
        "extrapolation": extrapolate(throughputs, tokens_per_event),
    }
    write_outputs(out, result)
    return result


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    from scaling.atomic import write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "gpu_check.json", result)
    write_text_atomic(out / "gpu_check.md", render_markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    args = parser.parse_args(argv)
    try:
        result = run_check(Path(args.out))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(render_markdown(result), end="")
    print(f"wrote {Path(args.out) / 'gpu_check.json'} and gpu_check.md")
    failed = [c for c in result["comparisons"] if not c["passed"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
