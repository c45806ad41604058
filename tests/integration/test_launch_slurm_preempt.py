"""A run preempted by a higher-priority partition's job requeues, resumes from its checkpoint and ends
exactly as an unpreempted run.

Real Slurm daemons on localhost (tests/slurm/cluster.sh), the real launcher and trainer (tiny config). The
run is submitted by `launch/sweep.py` to the `low` partition; once it has a checkpoint and is mid-training,
a plain `sbatch` job in the `high` partition (PriorityTier 10) asks for every CPU of the node. Slurm selects
the run's job for preemption and, because the cluster sets `preempt_send_user_signal`, sends its tasks the
job's `--signal` (USR2) at once; submitit calls `TrainJob.checkpoint`, the trainer checkpoints on the signal
and exits 3, submitit requeues the job (same job id) before the partition's GraceTime runs out, the high job
runs, and the requeued job resumes from the checkpoint. The unpreempted reference is the same run on this
machine without Slurm, started at the same time; losses must agree bit for bit.

The second case leaves `preempt_send_user_signal` out, as many sites do: preempted tasks get SIGTERM, which
submitit ignores. The trainer checkpoints on it and exits 3, and `TrainJob` requeues the job itself with
`scontrol requeue` before GraceTime ends (else the job would end FAILED with its checkpoint unused).
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

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

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.timeout(300)]
STEPS = 40
TRIGGER_STEP = 8  # past the first checkpoint (interval 5), well before the end


@pytest.fixture(scope="module", params=["USER", "TERM"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """USER: preemption sends the job's --signal (USR2, submitit's); TERM: Slurm's default SIGTERM."""
    folder = tmp_path_factory.mktemp(f"slurm-preempt-{request.param.lower()}")
    with slurm_cluster(folder, preempt_signal=request.param) as env:
        yield env


def write_spec(folder: Path, name: str, dataset: Path, site_overrides: dict[str, Any]) -> Path:
    return spec_file(folder, name, dataset, steps=STEPS, val_interval=20, site_overrides=site_overrides)


def test_partition_preemption_requeues_resumes_and_matches_unpreempted(cluster, tmp_path) -> None:
    t_start = time.time()
    dataset = tmp_path / "data" / "tiny"
    ref_spec = write_spec(reference_folder(tmp_path), "ref", dataset, {})
    spec = write_spec(tmp_path, "part", dataset, {"partition": "low"})
    run_dir, ref_dir = tmp_path / "runs/part/seed0", tmp_path / "reference/runs/ref/seed0"
    # the unpreempted reference runs on this machine meanwhile (Slurm's CPUs stay for the two jobs)
    reference = subprocess.Popen(
        sweep_command(ref_spec, "local"),
        env=cluster,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    done = subprocess.run(
        sweep_command(spec, "slurm", "--no-wait"),
        env=cluster,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = status(run_dir)["job_ids"][-1]
    assert job_fields(cluster, job_id)["Partition"] == "low"
    wait_for(lambda: (run_dir / "checkpoints/latest").is_file() and last_step(run_dir) >= TRIGGER_STEP, 150)
    t_trigger = time.time()
    got = preempt(cluster, run_dir, job_id)
    wait_for(lambda: status(run_dir)["state"] in ("completed", "failed"), timeout_s=120, poll_s=0.5)
    t_done = time.time()
    ref_out = reference.communicate(timeout=120)[0].decode()
    assert reference.returncode == 0, ref_out

    # preempted once by the high job, requeued under the same job id, and done
    wait_for(lambda: job_fields(cluster, job_id)["JobState"] not in ("RUNNING", "COMPLETING"), 60, 0.5)
    st, job, high = status(run_dir), job_fields(cluster, job_id), job_fields(cluster, got["high_job"])
    assert st["state"] == "completed" and st["last_step"] == STEPS, st
    assert st["job_ids"] == [job_id] and st["attempts"] == 1
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "1", job
    assert high["JobState"] == "COMPLETED" and high["StartTime"] <= job["StartTime"], (high, job)
    job_folder = tmp_path / "runs/part/.submitit" / job_id
    t_signal = signal_time(job_folder, cluster["PREEMPT_SIGNAL"])
    assert t_signal is not None, "submitit never saw the preemption signal (a timeout or a kill instead)"

    # resumed from the checkpoint taken on the signal: nothing lost, no step logged twice
    saved = got["checkpoint_step"]
    assert 0 < saved < STEPS and got["step_written_before_requeue"] == saved
    log_text = "".join(p.read_text() for p in job_folder.glob("*_log.err"))
    if cluster["PREEMPT_SIGNAL"] == "TERM":
        assert f"requeued job {job_id}" in log_text
    assert f"resumed from {run_dir}/checkpoints/step-{saved:08d}" in log_text
    train, want = rows(run_dir, "train"), rows(ref_dir, "train")
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in train] == [r["loss"] for r in want]
    assert [r["val_loss"] for r in rows(run_dir, "val")] == [r["val_loss"] for r in rows(ref_dir, "val")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_val_loss"] == json.loads((ref_dir / "summary.json").read_text())["final_val_loss"]

    figures = {
        "high_submit_to_signal_s": round(t_signal - got["t_submit"], 1),
        "signal_to_resumed_step_s": round(got["t_resumed"] - t_signal, 1),
        # of which Slurm's part (requeue, the high job, the restart; 1 s resolution), the rest is start-up
        "signal_to_job_restart_s": round(datetime.fromisoformat(job["StartTime"]).timestamp() - t_signal),
        "high_submit_to_resumed_step_s": round(got["t_resumed"] - got["t_submit"], 1),
        "steps_lost": got["step_written_before_requeue"] - saved,
        "step_at_high_submit": got["step_at_submit"],
        "checkpoint_step": saved,
        "start_to_trigger_s": round(t_trigger - t_start, 1),
        "resumed_to_done_s": round(t_done - got["t_resumed"], 1),
        "reference_extra_wait_s": round(time.time() - t_done, 1),
    }
    figures["preemption_signal"] = cluster["PREEMPT_SIGNAL"]
    print(json.dumps(figures))
    (tmp_path / "figures.json").write_text(json.dumps(figures))
