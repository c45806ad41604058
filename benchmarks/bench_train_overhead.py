"""Trainer overhead on CPU: steps/s of the DeepSpeed engine (ZeRO 1, one process) vs a plain PyTorch loop on
the same tiny model and the same packed batches, and the resume cost (process start -> first step) of a
resumed run vs a fresh one.

    .venv/bin/python benchmarks/bench_train_overhead.py          # quick (< 60 s)
    .venv/bin/python benchmarks/bench_train_overhead.py --full   # more steps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/integration"))
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache/torch_extensions"))

import torch  # noqa: E402
from test_train_resume import make_dataset  # noqa: E402

from scaling.data.loader import EventStream  # noqa: E402
from scaling.data.shards import read_manifest  # noqa: E402
from scaling.inputs.coordinates import Normalizer  # noqa: E402
from scaling.model import build_model  # noqa: E402
from scaling.objectives import build_objective  # noqa: E402
from scaling.train.batches import BatchSource  # noqa: E402
from scaling.train.config import load_train_config  # noqa: E402
from scaling.train.deepspeed_config import build_deepspeed_config  # noqa: E402
from scaling.train.dist import free_port  # noqa: E402
from scaling.train.param_groups import build_param_groups  # noqa: E402

CONFIG = REPO / "scaling/train/configs/tiny_cpu.yaml"


def batches(cfg, data: Path, n: int) -> list:  # noqa: ANN001
    objective = build_objective(cfg.objective)
    source = BatchSource(
        EventStream(data, "train", epochs=None),
        objective=objective,
        normalizer=Normalizer.from_stats(read_manifest(data)["stats"]),
        serialization=cfg.serialization,
        seed=0,
        micro_batch_events=cfg.budget.micro_batch_events,
    )
    return [source.next_batch() for _ in range(n)], objective


def time_loop(step_fn, batches: list, gas: int, warmup: int = 2) -> float:  # noqa: ANN001
    """Steps per second over the batches after `warmup` steps."""
    n_steps = len(batches) // gas
    for s in range(warmup):
        step_fn(batches[s * gas : (s + 1) * gas])
    start = time.perf_counter()
    for s in range(warmup, n_steps):
        step_fn(batches[s * gas : (s + 1) * gas])
    return (n_steps - warmup) / (time.perf_counter() - start)


def plain_and_deepspeed(cfg, data: Path, steps: int) -> tuple[float, float]:  # noqa: ANN001
    import deepspeed

    gas = cfg.budget.global_batch_events // cfg.budget.micro_batch_events
    micro, objective = batches(cfg, data, steps * gas)
    torch.manual_seed(0)
    model = build_model(cfg.model, out_dim=objective.out_dim)
    opt = torch.optim.AdamW(build_param_groups(model, cfg.model, cfg.optimizer.lr, 0.01))

    def plain(group: list) -> None:
        for b in group:
            (objective.loss(model(b.features, b.seq_idx), b) / gas).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    plain_rate = time_loop(plain, micro, gas)
    port = free_port()
    os.environ.update(
        RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    torch.manual_seed(0)
    model = build_model(cfg.model, out_dim=objective.out_dim)
    groups = build_param_groups(model, cfg.model, cfg.optimizer.lr, 0.01)
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=groups, config=build_deepspeed_config(cfg, world_size=1, on_gpu=False)
    )

    def with_engine(group: list) -> None:
        for b in group:
            engine.backward(objective.loss(engine(b.features, b.seq_idx), b))
            engine.step()

    return plain_rate, time_loop(with_engine, micro, gas)


def first_step_s(run_dir: Path, data: Path, steps: int, after: int) -> float:
    """Seconds from process start until the metrics row of step `after + 1` is written."""
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29631")
    cmd = [
        sys.executable,
        "-m",
        "scaling.train",
        str(CONFIG),
        f"data.dataset_dir={data}",
        f"budget.steps={steps}",
        "budget.checkpoint_fractions=[1.0]",
        "checkpoint.interval=0",
        "budget.val_interval=0",
        "--run-dir",
        str(run_dir),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics, seen = run_dir / "metrics.jsonl", None
    while seen is None and proc.poll() is None:
        if metrics.exists():
            rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.endswith("}")]
            if any(r["step"] == after + 1 for r in rows):
                seen = time.perf_counter() - start
        time.sleep(0.01)
    proc.wait()
    if seen is None:
        raise RuntimeError(f"run in {run_dir} ended (code {proc.returncode}) before step {after + 1}")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="more steps")
    args = parser.parse_args()
    steps = 40 if args.full else 12
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "data", n_train=64, n_val=8)
        cfg = load_train_config(CONFIG, [f"data.dataset_dir={data}"])
        fresh = first_step_s(Path(tmp) / "run", data, steps=4, after=0)
        resumed = first_step_s(Path(tmp) / "run", data, steps=6, after=4)
        plain, ds = plain_and_deepspeed(cfg, data, steps)
    print(f"plain PyTorch loop: {plain:.2f} steps/s   DeepSpeed ZeRO-1 engine: {ds:.2f} steps/s")
    print(f"overhead ratio (plain / DeepSpeed steps/s): {plain / ds:.2f}")
    print(f"process start -> first step: fresh {fresh:.1f} s, resumed {resumed:.1f} s")
    print(f"resume cost ratio (resumed / fresh): {resumed / fresh:.2f}")


if __name__ == "__main__":
    main()
