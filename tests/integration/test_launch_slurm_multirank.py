"""A 2-rank run on the localhost Slurm node: world size 2 through submitit, preempted mid-run, requeued,
resumed, and its final weights equal to an unpreempted 2-rank run's bit for bit.

Real Slurm daemons (tests/slurm/cluster.sh) declaring 4 CPUs on this 2-core machine, so that the run's job
(2 tasks x 1 CPU, partition `low`) leaves room that only a `high` job asking for all 4 cannot use: Slurm
preempts the run for it. Each task is one rank; `DistEnv` reads SLURM_PROCID / SLURM_NTASKS and the
rendezvous host from the job's node list. Both preemption signals are covered: the job's --signal (USR2,
submitit requeues from rank 0) and Slurm's default SIGTERM (the trainer checkpoints on it and `TrainJob`
requeues the job itself). The reference is the same 2-rank run under the local executor, run meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import torch

from scaling.train.checkpoint import load_frozen_model
from tests.integration.slurm_cluster import (
    REPO,
    job_fields,
    last_step,
    preempt,
    reference_folder,
    rows,
    signal_time,
    slurm_cluster,
    status,
    sweep_command,
    wait_for,
)
from tests.integration.slurm_cluster import write_spec as spec_file

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.timeout(420)]
STEPS = 30
TRIGGER_STEP = 8  # past the first checkpoint (interval 5), well before the end


@pytest.fixture(scope="module", params=["USER", "TERM"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp(f"slurm-2rank-{request.param.lower()}")
    with slurm_cluster(folder, preempt_signal=request.param, cpus=4) as env:
        yield env


def write_spec(folder: Path, name: str, dataset: Path, site_overrides: dict[str, Any]) -> Path:
    return spec_file(
        folder, name, dataset, steps=STEPS, val_interval=15, tasks_per_node=2, site_overrides=site_overrides
    )


def running_past(run_dir: Path, step: int) -> bool:
    """Checkpointed and past `step`; a run that failed meanwhile fails the test at once, with its reason."""
    state = status(run_dir)
    assert state["state"] != "failed", state
    return (run_dir / "checkpoints/latest").is_file() and last_step(run_dir) >= step


def test_two_rank_job_preempted_resumes_to_identical_weights(cluster, tmp_path) -> None:
    dataset = tmp_path / "data" / "tiny"
    simulate = ["simulate", "--out", str(dataset), "--events", "144", "--profile", "small"]
    subprocess.run([sys.executable, "-m", "scaling.data", *simulate, "--splits", "train=128,val=16"],
                   cwd=REPO, env=cluster, check=True, capture_output=True, timeout=120)  # fmt: skip
    run_dir, ref_dir = tmp_path / "runs/part/seed0", tmp_path / "reference/runs/ref/seed0"
    ref_spec = write_spec(reference_folder(tmp_path), "ref", dataset, {})
    reference = subprocess.Popen(sweep_command(ref_spec, "local"),
                                 env=cluster, cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)  # fmt: skip
    spec = write_spec(tmp_path, "part", dataset, {"partition": "low"})
    done = subprocess.run(sweep_command(spec, "slurm", "--no-wait"), env=cluster, cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = status(run_dir)["job_ids"][-1]
    job = job_fields(cluster, job_id)
    assert job["Partition"] == "low" and job["NumTasks"] == "2", job
    wait_for(lambda: running_past(run_dir, TRIGGER_STEP), 200)
    got = preempt(cluster, run_dir, job_id)
    wait_for(lambda: status(run_dir)["state"] in ("completed", "failed"), timeout_s=200, poll_s=0.5)
    ref_out = reference.communicate(timeout=200)[0].decode()
    assert reference.returncode == 0, ref_out

    wait_for(lambda: job_fields(cluster, job_id)["JobState"] not in ("RUNNING", "COMPLETING"), 60, 0.5)
    st, job = status(run_dir), job_fields(cluster, job_id)
    assert st["state"] == "completed" and st["last_step"] == STEPS, st
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "1", job
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    job_folder = tmp_path / "runs/part/.submitit" / job_id
    t_signal = signal_time(job_folder, cluster["PREEMPT_SIGNAL"])
    assert t_signal is not None, "submitit never saw the preemption signal (a timeout or a kill instead)"
    log_text = "".join(p.read_text() for p in job_folder.glob("*_log.err"))
    saved = got["checkpoint_step"]
    assert 0 < saved < STEPS and got["step_written_before_requeue"] == saved  # no step lost
    assert f"resumed from {run_dir}/checkpoints/step-{saved:08d}" in log_text

    # nothing lost, nothing twice, and the numbers of the unpreempted 2-rank run
    train, want = rows(run_dir, "train"), rows(ref_dir, "train")
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in train] == [r["loss"] for r in want]
    model, _ = load_frozen_model(run_dir)
    ref_model, _ = load_frozen_model(ref_dir)
    ref_state = ref_model.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, ref_state[name]), f"final weights differ in {name}"

    start = datetime.fromisoformat(job["StartTime"]).timestamp()
    figures = {
        "preemption_signal": cluster["PREEMPT_SIGNAL"],
        "world_size": 2,
        "signal_to_resumed_step_s": round(got["t_resumed"] - t_signal, 1),
        "signal_to_job_restart_s": round(start - t_signal),
        "steps_lost": got["step_written_before_requeue"] - saved,
        "checkpoint_step": saved,
        "weights_bit_identical": True,
        "measured_at": time.strftime("%H:%M:%S"),
    }
    print(json.dumps(figures))
    (tmp_path / "figures.json").write_text(json.dumps(figures))
