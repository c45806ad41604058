"""Label efficiency of the four regimes (FM4NPP Figure 5b; Fixed / Fine-tuned / From scratch of the
masked-particle-modelling paper) through the launcher, at a small scale, with seeds.

    .venv/bin/python benchmarks/bench_downstream_label_efficiency.py            # --quick: noise, 2 budgets
    .venv/bin/python benchmarks/bench_downstream_label_efficiency.py --full     # 3 tasks, 4 budgets
    # the CPU study's measurement, in three calls (the width-128 backbone costs ~16 s per fine-tuning step):
    B="--full --dataset data/cpu_study --budgets 25,800 --n-eval 100 --steps 100"
    W128=runs/cpu_study/w128-f1.0-physical; W16=runs/cpu_study/w16-f1.0-physical
    .venv/bin/python benchmarks/bench_downstream_label_efficiency.py $B --backbone $W128 \
        --tasks pid,noise,tracking --regimes frozen,adapter_only --tag main
    .venv/bin/python benchmarks/bench_downstream_label_efficiency.py $B --backbone $W16 \
        --tasks pid,noise --regimes frozen --tag size --with runs/label-eff-w128-f1.0-physical-main
    .venv/bin/python benchmarks/bench_downstream_label_efficiency.py $B --backbone $W16 \
        --tasks noise --regimes finetune,scratch --tag finetune

What it does, through the toolkit's entry points only:
1. without --backbone: simulates a small labelled dataset (`python -m scaling.data simulate`) and pretrains
   one backbone with k-NNN (`python -m scaling.train`), each only if missing;
2. writes a downstream sweep spec (backbone x regime x task x label budget x seed) beside the runs and
   launches it with `python launch/sweep.py` (the local executor; completed runs are reused on a rerun);
3. prints, per task and budget, every regime's headline metric as mean ± std over seeds and the frozen FM /
   AdapterOnly ratio (the report's table), then the checks the study asks for: at the smallest budget frozen
   beats AdapterOnly by more than 2 std, and finetune >= scratch at every budget; and the throughput (adapter
   events/s, metric time per 1000 events) per regime.
Measured here (--quick, 2 shared cores under heavy load, 41 min): backbone width 32, 2 layers, k-NNN k = 8,
150 steps of 4 events; noise tagging, 100 adapter steps of 8 events, 64 test events, seeds 0-2, mean ± std:
  labels  frozen          finetune        scratch         AdapterOnly     frozen/AO   (accuracy)
  10      0.948 ± 0.003   0.948 ± 0.003   0.947 ± 0.002   0.938 ± 0.008   1.01x
  300     0.821 ± 0.028   0.788 ± 0.023   0.807 ± 0.035   0.830 ± 0.026   0.99x
  macro recall at 10: 0.497 / 0.496 / 0.496 / 0.496 (every regime answers "signal": the first 10 events hold
  too few noise points); at 300: 0.635 ± 0.019 / 0.635 ± 0.014 / 0.657 ± 0.019 / 0.650 ± 0.026.
None of the study's claims holds at this scale: frozen beats AdapterOnly by 0.010 at 10 labels (2 std 0.016),
and finetune < scratch at 300 labels (0.788 vs 0.807). Adapter events/s: AdapterOnly 29, frozen 9.5,
finetune 3.6, scratch 3.2; metric time 0.01-0.1 s per 1000 events (the spread is the machine's load).
Measured on the CPU study (2 shared cores; 100 adapter steps of 8 events, 100 test events, seeds 0-2, mean ±
std; the width-128 and width-16 k-NNN backbones of sweeps/cpu_study.yaml), accuracy / pooled ARI:
  task      labels  frozen w128     AdapterOnly     frozen/AO  frozen w16
  pid       25      0.567 ± 0.021   0.334 ± 0.010   1.70x      0.531 ± 0.002
  pid       800     0.598 ± 0.027   0.415 ± 0.039   1.44x      0.536 ± 0.059
  noise     25      0.840 ± 0.001   0.719 ± 0.021   1.17x      0.844 ± 0.005
  noise     800     0.899 ± 0.000   0.709 ± 0.008   1.27x      0.878 ± 0.001
  tracking  25      0.212 ± 0.017   0.267 ± 0.022   0.79x      (layers=mix: 0.216 ± 0.005)
  tracking  800     0.233 ± 0.003   0.358 ± 0.019   0.65x
Frozen beats AdapterOnly by more than 2 std at 25 labels on PID (+0.233, 2 std 0.041) and noise (+0.121,
0.043), not on tracking (-0.055); the PID gap shrinks with labels, the noise gap grows. Noise tagging, width
16: finetune 0.858 ± 0.002 / 0.896 ± 0.002 against scratch 0.670 ± 0.025 / 0.732 ± 0.007 at 25 / 800 labels.
Larger >= smaller (frozen, w128 vs w16) holds in 3 of 4 cells; noise at 25 labels is 0.840 vs 0.844 (within
w16's std). Adapter events/s (frozen w128): PID 3.9, noise 8.2, tracking 4.9; AdapterOnly 8.6 / 11.1 / 6.9;
metric time 0.05-0.09 s per 1000 events (PID, noise), 0.6-0.9 s (tracking).
Regimes: frozen (cached features of the fixed backbone), finetune (backbone trained too, at 0.1 x the adapter
LR, muP groups), scratch (same network, random init), adapter_only (linear stem on the raw inputs, as wide as
the backbone). Budgets are nested prefixes of the train split; the test split is the same for every run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.downstream.report import HEADLINE, collect_runs, ratio_table  # noqa: E402
from scaling.train.dist import free_port  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "DS_ACCELERATOR": "cpu",
       "PYTHONPATH": str(REPO), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
       "MASTER_PORT": str(free_port())}  # fmt: skip
MODES: dict[str, dict] = {
    "quick": {"root": "label-eff-quick", "tasks": ["noise"], "budgets": [10, 300], "seeds": [0, 1, 2],
              "steps": 100, "tracking_steps": 100},
    "full": {"root": "label-eff", "tasks": ["tracking", "pid", "noise"], "budgets": [10, 30, 100, 300],
             "seeds": [0, 1, 2], "steps": 200, "tracking_steps": 200},
}  # fmt: skip
SIM = {"events": 380, "splits": "train=300,val=16,test=64", "profile": "small"}
PRETRAIN = {
    "model.name": "custom", "model.width": 32, "model.n_layers": 2, "model.d_state": 16, "model.headdim": 16,
    "model.base_width": 32, "objective.k": 8, "budget.steps": 150, "budget.global_batch_events": 4,
    "budget.micro_batch_events": 4, "schedule.warmup_steps": 20, "budget.val_interval": 75,
    "checkpoint.interval": 75, "data.simulate_if_missing.enabled": "false", "data.shuffle_buffer": 256,
    "logging.interval": 50, "data.val_split": "val",
}  # fmt: skip
REGIMES = ("frozen", "finetune", "scratch", "adapter_only")
ADAPTER = {"d_proj": 32, "n_heads": 4, "depth": 1, "mlp_hidden": 64, "n_queries": 48, "n_decoder_layers": 2}


def _run(args: list[str], log: Path) -> None:
    """Run `python <args>` from the repository root, output to `log`; fail loudly with its tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        res = subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, stdout=out, stderr=out)
    if res.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise SystemExit(f"`python {' '.join(args[:3])} ...` exited {res.returncode}; see {log}: {tail}")


def ensure_backbone(root: Path, dataset: Path) -> Path:
    """Simulate the dataset and pretrain the backbone, each unless it is already there."""
    if not (dataset / "manifest.json").is_file():
        print(f"simulating {SIM['events']} events into {dataset}", flush=True)
        _run(["-m", "scaling.data", "simulate", "--out", str(dataset), "--events", str(SIM["events"]),
              "--seed", "11", "--splits", SIM["splits"], "--profile", SIM["profile"]],
             root / "simulate.log")  # fmt: skip
    run_dir = root / "backbones" / "w32"
    if not (run_dir / "summary.json").is_file():
        print(f"pretraining {run_dir} ({PRETRAIN['budget.steps']} steps)", flush=True)
        keys = [f"{k}={v}" for k, v in {**PRETRAIN, "data.dataset_dir": str(dataset)}.items()]
        _run(["-m", "scaling.train", "scaling/train/configs/tiny_cpu.yaml", *keys, "--run-dir", str(run_dir)],
             root / "pretrain.log")  # fmt: skip
    return run_dir


def write_spec(
    root: Path, mode: dict, backbones: list[Path], dataset: Path, args: argparse.Namespace
) -> Path:
    """The downstream sweep: backbone x regime x task x budget x seed, runs under <root>/downstream/."""
    spec = {
        "name": "downstream", "entry": "analysis.downstream",
        "config_class": "analysis.downstream.train.DownstreamConfig", "runs_dir": str(root),
        "base": {"dataset": str(dataset), "train_split": "train", "eval_split": args.eval_split,
                 "n_eval_events": args.n_eval, "cache_dir": str(root / "downstream" / "feature-cache"),
                 "device": "cpu", "adapter": ADAPTER, "layers": args.layers,
                 "optimizer": {"lr": 2.0e-3}, "schedule": {"warmup_steps": 10},
                 "budget": {"steps": mode["steps"], "batch_events": 8}},
        "axes": {"backbone": [str(b) for b in backbones], "regime": mode["regimes"],
                 "task": mode["tasks"], "n_train_events": mode["budgets"], "seed": mode["seeds"]},
        "overrides": [o for o in (
            {"when": {"task": "pid"}, "set": {"adapter": {"loss": "weighted_ce"}}},
            {"when": {"task": "noise"}, "set": {"adapter": {"loss": "weighted_ce"}}},
            {"when": {"task": "tracking"}, "set": {"budget": {"steps": mode["tracking_steps"]}}},
        ) if o["when"]["task"] in mode["tasks"]],
        "run_name": "{task}-" + ("{backbone_name}-" if len(backbones) > 1 else "")
                    + "{regime}-{n_train_events}-s{seed}",
        "resources": {"default": {"nodes": 1, "tasks_per_node": 1, "cpus_per_task": 1, "mem_gb": 3,
                                  "hours": 1}},
        "site": "local", "executor": {"max_parallel": 0, "max_attempts": 1},
    }  # fmt: skip
    path = root / "label_efficiency.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _values(runs: list[dict], metrics: dict[str, str]) -> dict[tuple, np.ndarray]:
    """(task, regime, budget) -> the metric over seeds."""
    vals: dict[tuple, list[float]] = defaultdict(list)
    for r in runs:
        v = r["metrics"].get(metrics[r["task"]])
        vals[(r["task"], r.get("regime"), r["n_train_events"])].append(np.nan if v is None else float(v))
    return {k: np.asarray(v) for k, v in vals.items()}


def checks(runs: list[dict], metrics: dict[str, str]) -> list[str]:
    """The study's claims, each with its numbers, for the regimes that ran: frozen vs AdapterOnly at the
    smallest budget (> 2 std) and at the largest (the advantage shrinks), finetune >= scratch at every budget
    (means over seeds)."""
    vals = _values(runs, metrics)
    out = []
    for task in sorted({k[0] for k in vals}):
        budgets = sorted({k[2] for k in vals if k[0] == task})
        gaps = []
        for b in budgets:
            if (task, "frozen", b) in vals and (task, "adapter_only", b) in vals:
                fm, ao = vals[(task, "frozen", b)], vals[(task, "adapter_only", b)]
                gaps.append((b, np.nanmean(fm) - np.nanmean(ao), 2 * max(np.nanstd(fm), np.nanstd(ao))))
        if gaps:
            b, diff, spread = gaps[0]
            ok = "holds" if diff > spread else "does NOT hold"
            out.append(f"{task} {metrics[task]}: frozen - AdapterOnly at {b} labels = {diff:+.3f} "
                       f"(2 std = {spread:.3f}): {ok}")  # fmt: skip
        if len(gaps) > 1:
            first, last = gaps[0][1], gaps[-1][1]
            verdict = (
                "no advantage to shrink (frozen is behind at the smallest budget)"
                if first <= 0
                else "the advantage shrinks"
                if last < first
                else "the advantage does NOT shrink"
            )
            out.append(f"{task} {metrics[task]}: frozen - AdapterOnly {first:+.3f} at {gaps[0][0]} -> "
                       f"{last:+.3f} at {gaps[-1][0]} labels: {verdict}")  # fmt: skip
        for b in budgets:
            if (task, "finetune", b) in vals and (task, "scratch", b) in vals:
                ft, sc = (np.nanmean(vals[(task, g, b)]) for g in ("finetune", "scratch"))
                out.append(f"{task} {metrics[task]}: finetune {ft:.3f} vs scratch {sc:.3f} at {b} labels: "
                           f"{'holds' if ft >= sc else 'does NOT hold'}")  # fmt: skip
    return out


def size_checks(runs: list[dict], metrics: dict[str, str]) -> list[str]:
    """Figure 5a's direction: frozen features of a larger backbone do at least as well as a smaller one's at
    equal labels (means over seeds; the std of each is printed beside it)."""
    sizes = {r["backbone"]: r["backbone_size"] for r in runs if r.get("regime") == "frozen"}
    if len(sizes) < 2:
        return []
    order = sorted(sizes, key=sizes.get)
    out = []
    for task in sorted({r["task"] for r in runs}):
        for b in sorted({r["n_train_events"] for r in runs if r["task"] == task}):
            cells = []
            for bb in order:
                v = _values([r for r in runs if r["backbone"] == bb], metrics).get((task, "frozen", b))
                if v is not None:
                    cells.append((Path(bb).name, float(np.nanmean(v)), float(np.nanstd(v))))
            if len(cells) < 2:
                continue
            ok = all(later[1] >= earlier[1] for earlier, later in zip(cells, cells[1:], strict=False))
            text = ", then ".join(f"{n} {m:.3f} ± {s:.3f}" for n, m, s in cells)
            out.append(f"{task} {metrics[task]} at {b} labels, frozen, by size: {text}: larger >= smaller "
                       f"{'holds' if ok else 'does NOT hold'}")  # fmt: skip
    return out


def throughput(runs: list[dict]) -> list[str]:
    by: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for r in runs:
        by[(r["task"], r.get("regime"))].append(
            (r["train"]["events_per_s"], r["metrics"]["metric_s_per_1000_events"])
        )
    return [f"{t:8s} {g:12s} adapter {np.mean([a for a, _ in v]):7.1f} events/s, "
            f"metric {np.mean([m for _, m in v]):.3f} s per 1000 events"
            for (t, g), v in sorted(by.items())]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--full", action="store_true", help="three tasks, four budgets (an hour or more on 2 cores)"
    )
    parser.add_argument("--quick", action="store_true", help="noise tagging at 10 and 300 labels (default)")
    parser.add_argument(
        "--backbone", default="", help="pretraining run dirs, comma-separated (default: pretrain a small one)"
    )
    parser.add_argument("--dataset", default="", help="labelled dataset (with --backbone)")
    parser.add_argument("--eval-split", default="test")
    parser.add_argument("--n-eval", type=int, default=64)
    parser.add_argument("--budgets", default="", help="comma-separated label budgets (default: the mode's)")
    parser.add_argument("--tasks", default="", help="comma-separated tasks (default: the mode's)")
    parser.add_argument("--regimes", default="", help="comma-separated regimes (default: all four)")
    parser.add_argument("--steps", type=int, default=0, help="adapter steps (default: the mode's)")
    parser.add_argument(
        "--layers", default="last", help="backbone layers the adapters read (a labelled variant)"
    )
    parser.add_argument(
        "--with", dest="also", default="", help="runs folders of earlier calls to include in the size checks"
    )
    parser.add_argument("--tag", default="", help="suffix of the runs folder, to keep two selections apart")
    args = parser.parse_args()
    mode = {"regimes": list(REGIMES), **MODES["full" if args.full else "quick"]}
    mode.update({k: [int(x) if k == "budgets" else x for x in v.split(",")]
                 for k, v in (("budgets", args.budgets), ("tasks", args.tasks), ("regimes", args.regimes))
                 if v})  # fmt: skip
    if args.steps:
        mode.update(steps=args.steps, tracking_steps=args.steps)
    unknown = sorted(set(mode["regimes"]) - set(REGIMES))
    if unknown:
        raise SystemExit(f"--regimes: unknown {unknown}; choose from {', '.join(REGIMES)}")
    names = [Path(b).name for b in args.backbone.split(",") if b]
    root = REPO / "runs" / "-".join([mode["root"], *names[:1], *([args.tag] if args.tag else [])])
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.backbone:
        backbones = [Path(b).resolve() for b in args.backbone.split(",") if b]
        dataset = Path(args.dataset).resolve()
    else:
        dataset = REPO / "data" / "label-eff"
        backbones = [ensure_backbone(root, dataset)]
    spec = write_spec(root, mode, backbones, dataset, args)
    n = len(backbones) * len(mode["regimes"]) * len(mode["tasks"]) * len(mode["budgets"]) * len(mode["seeds"])
    print(f"launching {n} downstream runs: {spec}", flush=True)
    _run(["launch/sweep.py", str(spec)], root / "sweep.log")
    runs = [r for r in collect_runs(root / "downstream") if r.get("regime")]
    print(
        f"\nbudgets {mode['budgets']}; seeds {mode['seeds']}; {args.n_eval} test events ({args.eval_split})"
    )
    recall = {"pid": "macro_recall", "noise": "macro_recall", "tracking": "efficiency"}
    for backbone in backbones:
        mine = [r for r in runs if Path(r["backbone"]).resolve() == backbone]
        print(f"\nbackbone {backbone}\n")
        for table in (ratio_table(mine), ratio_table(mine, recall)):
            print(table or "")
        print("\n".join(["checks:", *checks(mine, HEADLINE), *checks(mine, recall)]))
    earlier = [
        r for d in args.also.split(",") if d for r in collect_runs(Path(d) / "downstream") if r.get("regime")
    ]
    sizes = size_checks(runs + earlier, HEADLINE)
    if sizes:
        print("\n".join(["", "backbone size (Figure 5a):", *sizes]))
    print("\n".join(["", "throughput:", *throughput(runs)]))
    print(f"\nwall {time.perf_counter() - t0:.0f} s; runs in {root / 'downstream'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
