"""Planning anywhere: the dry-run of a paper sweep needs neither a Slurm controller nor torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, runpy, sys, time
t0 = time.perf_counter()
sys.argv = ["launch/sweep.py", *sys.argv[1:]]
try:
    runpy.run_path("launch/sweep.py", run_name="__main__")
except SystemExit as end:
    code = end.code
heavy = sorted(m for m in ("torch", "deepspeed", "h5py", "mamba_ssm") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy, "s": time.perf_counter() - t0}))
"""


def _dry_run(tmp_path: Path, *args: str) -> tuple[dict, str]:
    # PATH without sbatch or scontrol: a laptop, or a login node whose controller is down
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    *lines, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join(lines)


def test_dry_run_plans_a_slurm_site_without_slurm_or_torch(tmp_path: Path) -> None:
    probe, out = _dry_run(tmp_path, "sweeps/model_scaling.yaml", "--dry-run", "--show", "sbatch")
    assert probe["code"] == 0 and probe["heavy"] == [], probe
    assert "executor slurm on site perlmutter-gpu" in out
    for name, nodes in (("m1", 1), ("m4", 2), ("m5", 6), ("m6", 16)):
        assert f"model.name={name}" in out
        assert f"#SBATCH --job-name={name}_steps" in out
        assert f"#SBATCH --nodes={nodes}\n" in out
    assert "#SBATCH --constraint=gpu" in out and "srun --kill-on-bad-exit=1 python -m scaling.train" in out
    assert "total: 6,166 GPU-hours" in out  # Table 1: 10 + 12 + 4*20 + 8*32 + 24*50 + 64*72


def test_show_config_prints_each_runs_resolved_hyperparameters(tmp_path: Path) -> None:
    probe, out = _dry_run(tmp_path, "sweeps/model_scaling.yaml", "--dry-run", "--show", "config")
    assert probe["heavy"] == [], probe
    assert out.count("train_split: pretrain") == 6 and out.count("val_split: val") == 6
    assert "global_batch_events: 264" in out and "micro_batch_events: 4" in out  # m5, m6 overrides
    assert "lr: 0.0002" in out


IMPORTS = """
import importlib, json, pkgutil, sys
import launch
names = ["launch", *(f"launch.{m.name}" for m in pkgutil.iter_modules(launch.__path__)),
         "scaling.train.config", "scaling.train", "scaling.model", "scaling.objectives", "scaling.inputs"]
for name in names:
    importlib.import_module(name)
from scaling.train import TrainConfig, load_train_config
cfg = load_train_config("scaling/train/configs/tiny_cpu.yaml", ["model.name=m3"])
heavy = sorted(m for m in ("torch", "deepspeed", "numba", "mamba_ssm") if m in sys.modules)
print(json.dumps({"names": names, "heavy": heavy, "width": cfg.model.width}))
"""


def test_launcher_and_config_modules_import_without_torch_deepspeed_or_numba() -> None:
    """Every launch module (launch/sweep.py's too), the training config tree and the packages' lazy names:
    a login node validates every run's config, named model resolved, with none of the heavy imports."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"launch.sweep", "launch.plan", "launch.spec", "launch.executor"} <= set(probe["names"])
    assert probe["heavy"] == [], probe
    assert probe["width"] == 256  # model.name=m3 filled in at load, without the model code


def test_builtin_objective_names_match_the_registry() -> None:
    from scaling.objectives import REGISTRY
    from scaling.objectives.config import BUILTIN_OBJECTIVES

    assert set(BUILTIN_OBJECTIVES) == set(REGISTRY)


def test_registries_configs_and_the_model_family_import_without_torch() -> None:
    code = (
        "import sys, scaling.registry, scaling.train.schedule, scaling.train.config, "
        "scaling.objectives.config, scaling.model.family; from scaling.model import MODEL_FAMILY; "
        "from scaling.objectives.config import ObjectiveConfig; ObjectiveConfig(name='mpm', mask_ratio=0.5); "
        "print(sorted(m for m in ('torch', 'deepspeed') if m in sys.modules), len(MODEL_FAMILY))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "8"]
