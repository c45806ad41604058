"""Planning anywhere: the dry-run of a paper sweep or a downstream sweep needs neither a Slurm controller nor
torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, runpy, sys, time
t0 = time.perf_counter()
launcher = sys.argv.pop(1)
sys.argv = ["launch/sweep.py", *sys.argv[1:]]
try:
    runpy.run_path(launcher, run_name="__main__")
except SystemExit as end:
    code = end.code
heavy = sorted(m for m in ("torch", "deepspeed", "numba", "h5py", "mamba_ssm") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy, "s": time.perf_counter() - t0}))
"""


def _dry_run(tmp_path: Path, *args: str, cwd: Path = REPO) -> tuple[dict, str]:
    # PATH without sbatch or scontrol: a laptop, or a login node whose controller is down
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(REPO)}
    launcher = str(REPO / "launch/sweep.py")
    done = subprocess.run([sys.executable, "-c", PROBE, launcher, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
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


def _backbones(runs: Path, sweep: str, names: list[str]) -> None:
    """A pretraining sweep as the launcher leaves it: sweep.json and each run's config.yaml."""
    for name in names:
        (runs / sweep / name).mkdir(parents=True)
        (runs / sweep / name / "config.yaml").write_text(f"model: {{name: {name}}}\n")
    (runs / sweep / "sweep.json").write_text(json.dumps({"runs": {n: {} for n in names}}))


@pytest.mark.parametrize(
    ("spec", "backbones", "n_runs"),
    [
        (
            "downstream.yaml",
            "model_scaling",
            2 * 4 * 3 * 7 * 3,
        ),  # backbones x regimes x tasks x budgets x seeds
        ("cpu_study_downstream.yaml", "cpu_study", 2 * 4 * 3 * 4 * 3),
    ],
)
def test_downstream_dry_run_plans_without_torch_deepspeed_or_numba(
    tmp_path: Path, spec: str, backbones: str, n_runs: int
) -> None:
    """Every adapter run's DownstreamConfig is built and checked (dataset, backbone folder) on a login node
    with none of the heavy imports: the config classes live in analysis/downstream/config.py."""
    data = yaml.safe_load((REPO / "sweeps" / spec).read_text())
    data["runs_dir"] = str(tmp_path / "runs")  # the backbones' sweep, stood in for below
    if "/" in data["axes"]["backbone"]["runs_of"]:  # a folder (cpu_study's runs sit in runs/cpu_study/)
        data["axes"]["backbone"]["runs_of"] = data["depends_on"] = str(tmp_path / "runs" / backbones)
    path = tmp_path / spec
    path.write_text(yaml.safe_dump(data))
    _backbones(tmp_path / "runs", backbones, ["m1_steps50000", "m2_steps50000"])
    probe, out = _dry_run(tmp_path, str(path), "--dry-run", "--show", "config", cwd=tmp_path)
    assert probe["code"] == 0 and probe["heavy"] == [], (probe, out)
    assert out.startswith(f"{n_runs} runs, executor ")
    assert f"{tmp_path / 'runs' / backbones / 'm2_steps50000'}" in out  # the runs_of axis, resolved
    assert out.count("regime: finetune") == n_runs // 4  # every config printed, resolved by DownstreamConfig
    assert "problem:" in out and "no manifest.json there" in out  # the dataset check ran too


def test_the_downstream_config_names_keep_their_old_homes() -> None:
    from analysis.downstream import adapters, config, inputs, train

    assert train.DownstreamConfig is config.DownstreamConfig and train.ADAPTER_ONLY == config.ADAPTER_ONLY
    assert adapters.AdapterConfig is config.AdapterConfig and inputs.parse_layers is config.parse_layers
    assert train.AdapterBudgetConfig is config.AdapterBudgetConfig and train.run_regime is config.run_regime


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
