"""Does pretraining learn more than a lookup table? k-NNN target settings side by side, ratios and probes.

    .venv/bin/python benchmarks/bench_pretraining_signal.py                  # quick: 300 steps per setting
    .venv/bin/python benchmarks/bench_pretraining_signal.py --steps 800      # the calibration of the issue
    .venv/bin/python benchmarks/bench_pretraining_signal.py --settings sharp --steps 2000 --lengths

Every number comes from the toolkit's own entry points: `python -m scaling.data simulate` (the `sphenix`
profile when the simulator has it, else `paper`), `python -m scaling.train` (the real trainer) per setting
with one model (4 layers, width 128, d_state 32, k = 4, 2 events per step), then `python -m analysis.probe`
on each run when that command exists. The validation loss is divided by the loss of the lookup baselines the
trainer fits on the same training events (val_loss_ratio: mean target per radial layer and slot; the
layer x eta table is finer), each in the setting's own target units, so settings compare by ratio only.
`--lengths` adds the ratio at each budget checkpoint (25 / 50 / 100 % of the steps): is learning a matter of
scale here? Results are printed as a table and written to runs/<root>/signal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from scaling.train.dist import free_port

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "scaling/train/configs/tiny_cpu.yaml"

# The model and batch of the calibration; the settings differ only in target and input options.
MODEL = [
    "model.name=custom", "model.n_layers=4", "model.width=128", "model.base_width=128", "model.d_state=32",
    "model.headdim=32", "model.chunk_size=128", "objective.k=4", "optimizer.lr=2e-3",
    "schedule.min_lr_ratio=0.1", "budget.global_batch_events=2", "budget.micro_batch_events=2",
    "data.val_events=64", "data.difficulty_events=256", "data.shuffle_buffer=256", "logging.interval=20",
]  # fmt: skip
SETTINGS: dict[str, list[str]] = {
    # the paper's: normalised cube, absolute neighbour positions, standardised energy, MSE
    "paper": [
        "objective.metric=normalised",
        "objective.relative_targets=false",
        "objective.target_scaling=none",
        "data.energy_feature=standard",
    ],  # fmt: skip
    "cm+std+logE": [
        "objective.metric=physical",
        "objective.target_scaling=standard",
        "data.energy_feature=log",
    ],  # fmt: skip
    "sharp": ["objective.metric=physical", "objective.target_scaling=robust", "data.energy_feature=log"],
    "sharp+huber": [
        "objective.metric=physical",
        "objective.target_scaling=robust",
        "data.energy_feature=log",
        "objective.loss=huber",
    ],  # fmt: skip
}


def env() -> dict[str, str]:
    return {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO), "RANK": "0", "WORLD_SIZE": "1",
            "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}  # fmt: skip


def simulate(data: Path, events: int) -> None:
    if (data / "manifest.json").exists():
        return
    help_text = subprocess.run([sys.executable, "-m", "scaling.data", "simulate", "--help"], env=env(),
                               capture_output=True, text=True).stdout  # fmt: skip
    profile = "sphenix" if "sphenix" in help_text else "paper"
    cmd = [sys.executable, "-m", "scaling.data", "simulate", "--out", str(data),
           "--events", str(events + 200), "--splits", f"train={events},val=100,test=100",
           "--profile", profile, "--seed", "11"]  # fmt: skip
    print(f"simulating {events} + 200 events ({profile} profile) into {data}", flush=True)
    subprocess.run(cmd, env=env(), check=True)


def train(run: Path, data: Path, setting: str, steps: int) -> dict:
    if not (run / "summary.json").exists():
        over = [*MODEL, *SETTINGS[setting], f"data.dataset_dir={data}", "data.val_split=val",
                f"budget.steps={steps}", f"schedule.warmup_steps={max(10, steps // 20)}",
                f"budget.val_interval={max(1, steps // 4)}", f"checkpoint.interval={steps}",
                f"logging.progress_interval={max(1, steps // 10)}"]  # fmt: skip
        t0 = time.time()
        print(f"[{setting}] training {steps} steps into {run}", flush=True)
        subprocess.run([sys.executable, "-m", "scaling.train", str(CONFIG), *over, "--run-dir", str(run)],
                       env=env(), check=True)  # fmt: skip
        print(f"[{setting}] {time.time() - t0:.0f} s", flush=True)
    return json.loads((run / "summary.json").read_text())


def probe(run: Path) -> dict | None:
    """analysis.probe's figures where the command exists (probe.json), else None."""
    out = run / "probe.json"
    if not out.exists():
        cmd = [sys.executable, "-m", "analysis.probe", str(run), "--events", "200"]
        done = subprocess.run(cmd, env=env(), capture_output=True, text=True)
        if done.returncode != 0:
            print(f"probe skipped: {done.stderr.strip().splitlines()[-1:] or done.returncode}", flush=True)
            return None
    return json.loads(out.read_text())


def row(setting: str, summary: dict) -> dict:
    ratios = summary.get("final_val_ratios") or {}
    return {
        "setting": setting,
        "val_loss_ratio": summary.get("final_val_loss_ratio"),
        "val_loss_ratio_layer_eta": ratios.get("val_loss_ratio_layer_eta"),
        "coord_ratio": ratios.get("val_coord_ratio", {}),
        "by_length": [
            (b["fraction"], b.get("val_loss_ratio")) for b in summary.get("budget_checkpoints", [])
        ],
        "wall_s": summary.get("wall_s"),
        "events": summary.get("events"),
    }


def fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--events", type=int, default=1600, help="training events simulated")
    p.add_argument(
        "--settings", default="paper,cm+std+logE,sharp", help="comma-separated: " + ",".join(SETTINGS)
    )
    p.add_argument("--root", type=Path, default=REPO / "runs/bench-signal")
    p.add_argument("--no-probe", action="store_true")
    args = p.parse_args()
    data = args.root / "data"
    simulate(data, args.events)
    rows = []
    for setting in args.settings.split(","):
        if setting not in SETTINGS:
            raise SystemExit(f"--settings: unknown {setting!r}; choose from {', '.join(SETTINGS)}")
        run = args.root / f"{setting}-{args.steps}"
        r = row(setting, train(run, data, setting, args.steps))
        r["probe"] = None if args.no_probe else probe(run)
        rows.append(r)
    print(
        f"\n{'setting':14} {'vs layer':>9} {'vs layer x eta':>15}  per coordinate (vs layer)      by length"
    )
    for r in rows:
        coords = " ".join(f"{k} {fmt(v)}" for k, v in r["coord_ratio"].items())
        length = " ".join(f"{f:.2f}:{fmt(v)}" for f, v in r["by_length"])
        print(f"{r['setting']:14} {fmt(r['val_loss_ratio']):>9} {fmt(r['val_loss_ratio_layer_eta']):>15}  "
              f"{coords:30} {length}")  # fmt: skip
    (args.root / "signal.json").write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))
    print(f"\nwritten {args.root / 'signal.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
