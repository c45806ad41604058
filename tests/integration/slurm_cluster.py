"""Shared set-up of the Slurm integration tests: real daemons on localhost (tests/slurm/cluster.sh), the
environment a test's commands run in, a tiny sweep spec, readers of a run directory, and the preemption of a
run's job by a high-partition job (the preemption tests, one rank and two).

    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory):
        with slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
            yield env
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests/slurm/cluster.sh"


@contextmanager
def slurm_cluster(
    folder: Path,
    *,
    preempt_signal: str | None = None,
    cpus: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """Start slurmctld and slurmd with their configuration in `folder`; yield the environment that reaches
    them (SLURM_CONF, the client wrappers first on PATH, CPU DeepSpeed, one thread; plus `env`), stop them
    after. `preempt_signal`: USER (the job's --signal, USR2) or TERM (Slurm's default SIGTERM), also given
    as PREEMPT_SIGNAL; `cpus`: CPUs the node declares (more than the machine has: room for preemption)."""
    start_env = dict(os.environ)
    if preempt_signal is not None:
        start_env["SLURM_TEST_PREEMPT_SIGNAL"] = preempt_signal
    if cpus is not None:
        start_env["SLURM_TEST_CPUS"] = str(cpus)
    start = ["bash", str(SCRIPT), "start", str(folder)]
    subprocess.run(start, check=True, capture_output=True, timeout=60, env=start_env)
    out = {
        **os.environ,
        "SLURM_CONF": str(folder / "slurm.conf"),
        "PATH": f"{folder / 'bin'}:{os.environ['PATH']}",
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        **({"PREEMPT_SIGNAL": preempt_signal} if preempt_signal is not None else {}),
        **(env or {}),
    }
    try:
        yield out
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], check=False, timeout=60)


def write_spec(
    folder: Path,
    name: str,
    dataset: Path,
    *,
    steps: int,
    val_interval: int,
    seeds: list[int] | None = None,
    tasks_per_node: int | None = None,
    site_overrides: dict[str, Any] | None = None,
) -> Path:
    """`folder/<name>.yaml`: the tiny CPU config for `steps` steps on the `local` site (a checkpoint every 5
    steps, a log row every step), one run per seed (seed 0 alone by default), runs under `folder/runs`."""
    resources: dict[str, Any] = {"cpus_per_task": 1, "mem_gb": 2, "hours": 0.5}
    if tasks_per_node is not None:
        resources = {"tasks_per_node": tasks_per_node, **resources}
    spec: dict[str, Any] = {
        "name": name,
        "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"),
        "overrides": {
            "data.dataset_dir": str(dataset),
            "budget.steps": steps,
            "logging.interval": 1,
            "checkpoint.interval": 5,
            "budget.val_interval": val_interval,
        },
        "axes": {"grid": {"seed": seeds if seeds is not None else [0]}},
        "resources": {"default": resources},
        "site": "local",
    }
    if site_overrides is not None:
        spec["site_overrides"] = site_overrides
    spec["runs_dir"] = str(folder / "runs")
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_command(spec: Path, executor: str, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "launch/sweep.py"), str(spec), "--executor", executor, *args]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def rows(run_dir: Path, kind: str) -> list[dict]:
    """metrics.jsonl rows of `kind` (train, val); a line being written is skipped."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("kind") == kind:
            out.append(row)
    return out


def last_step(run_dir: Path) -> int:
    return max((r["step"] for r in rows(run_dir, "train")), default=0)


def wait_for(predicate: Callable[[], Any], timeout_s: float = 120.0, poll_s: float = 0.1) -> Any:
    """The first truthy value of `predicate()`, polled every `poll_s`; AssertionError after `timeout_s`."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"condition not met in {timeout_s:.0f} s")


def reference_folder(tmp_path: Path) -> Path:
    """Where the uninterrupted reference's spec lives: it trains the preempted run's config on purpose, so it
    stays out of that spec's folder, where the launcher refuses a config another spec already trains."""
    folder = tmp_path / "reference"
    folder.mkdir(exist_ok=True)
    return folder


def slurm(env: dict[str, str], *args: str) -> str:
    return subprocess.run(list(args), env=env, check=True, capture_output=True, text=True, timeout=30).stdout


def job_fields(env: dict[str, str], job_id: str) -> dict[str, str]:
    """`scontrol show job` as key -> value (values without spaces are all this test reads)."""
    text = slurm(env, "scontrol", "-o", "show", "job", job_id)
    return dict(re.findall(r"(\w+)=(\S*)", text))


def signal_time(job_folder: Path, how: str) -> float | None:
    """When submitit's handler caught the preemption signal (its log line's local timestamp): USR2 handled
    as a preemption, or SIGTERM bypassed (the trainer acts on it and TrainJob requeues)."""
    line = "Caught signal SIGUSR2 .*preempted" if how == "USER" else "Bypassing signal SIGTERM"
    for path in job_folder.glob("*_log.err"):
        found = re.search(r"\((\d{4}-\d\d-\d\d [\d:,]+)\) - " + line, path.read_text())
        if found:
            return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def preempt(env: dict[str, str], run_dir: Path, job_id: str) -> dict[str, Any]:
    """Submit a high-partition job that needs every CPU; wait until the run checkpointed and resumed."""
    ncpu = job_fields(env, job_id).get("NumCPUs")
    node_cpus = re.search(r"CPUTot=(\d+)", slurm(env, "scontrol", "show", "node")).group(1)
    assert ncpu is not None and int(ncpu) < int(node_cpus)  # the high job fits only by preempting
    seen = last_step(run_dir)
    t_submit = time.time()
    high = slurm(
        env, "sbatch", "--parsable", "-p", "high", "-c", node_cpus, "-o", "/dev/null", "--wrap", "sleep 2"
    )
    high = high.strip().split(";")[0]
    wait_for(lambda: status(run_dir)["state"] == "preempted", timeout_s=60, poll_s=0.05)
    t_preempted = time.time()
    saved, written = status(run_dir)["last_step"], last_step(run_dir)
    wait_for(lambda: status(run_dir)["state"] == "running" and last_step(run_dir) > saved, timeout_s=120)
    t_resumed = time.time()
    return {
        "high_job": high,
        "step_at_submit": seen,
        "step_written_before_requeue": written,
        "checkpoint_step": saved,
        "t_submit": t_submit,
        "t_preempted": t_preempted,
        "t_resumed": t_resumed,
    }
