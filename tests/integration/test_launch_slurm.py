"""The launcher against real Slurm daemons on localhost and the real trainer (tiny config).

One session-scoped cluster (tests/slurm/cluster.sh); each test has its own sweep folder, hence its own
submitit folder. A reference sweep of two runs is shared: the preempted runs must end with its seed-0 metrics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.slurm_cluster import REPO, rows, slurm_cluster, status, sweep_command, wait_for
from tests.integration.slurm_cluster import write_spec as spec_file

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.timeout(240)]
STEPS = 40


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
        os.environ.update({k: env[k] for k in ("SLURM_CONF", "PATH")})
        yield env


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data") / "tiny"


def write_spec(folder: Path, name: str, dataset: Path, seeds: list[int]) -> Path:
    return spec_file(folder, name, dataset, steps=STEPS, val_interval=20, seeds=seeds)


def sweep(env: dict[str, str], spec: Path, *args: str) -> str:
    done = subprocess.run(
        sweep_command(spec, "slurm", *args),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_done(run_dir: Path) -> None:
    wait_for(
        lambda: (run_dir / "status.json").is_file() and status(run_dir)["state"] in ("completed", "failed"),
        timeout_s=180,
        poll_s=0.5,
    )


@pytest.fixture(scope="session")
def reference(cluster: dict[str, str], dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-run sweep through sbatch, to the end (shared by the preemption tests as the unpreempted run)."""
    folder = tmp_path_factory.mktemp("reference")
    spec = write_spec(folder, "ref", dataset, [0, 1])
    out = sweep(cluster, spec)
    assert out.count("submit (new)") == 2, out
    # the wait shows each job's state changes, ending with the run's own state once the job left
    for name in ("seed0", "seed1"):
        changes = [line for line in out.splitlines() if f" {name} (job " in line]
        assert changes and re.search(r"(COMPLETED|left the queue \(run completed\))$", changes[-1]), out
    return spec


def test_two_run_sweep_completes_and_rerun_submits_nothing(cluster: dict[str, str], reference: Path) -> None:
    sweep_dir = reference.parent / "runs" / "ref"
    ledger = json.loads((sweep_dir / "sweep.json").read_text())
    assert set(ledger["runs"]) == {"seed0", "seed1"} and all(len(v) == 1 for v in ledger["jobs"].values())
    for name in ("seed0", "seed1"):
        st = status(sweep_dir / name)
        assert st["state"] == "completed" and st["last_step"] == STEPS and st["attempts"] == 1
        assert (sweep_dir / name / "summary.json").is_file()
    out = sweep(cluster, reference)
    assert "submit (" not in out and out.count("skip (completed)") == 2, out
    assert json.loads((sweep_dir / "sweep.json").read_text())["jobs"] == ledger["jobs"]
    table = sweep(cluster, reference, "--status").splitlines()
    assert [line.split()[1] for line in table[1:]] == ["completed", "completed"]
    assert all(f"{STEPS}/{STEPS}" in line for line in table[1:])


def preempt_and_compare(env: dict[str, str], folder: Path, dataset: Path, reference: Path, how: str) -> dict:
    spec = write_spec(folder, how, dataset, [0])
    run_dir = folder / "runs" / how / "seed0"
    sweep(env, spec, "--no-wait")
    job_id = status(run_dir)["job_ids"][-1]
    seen = wait_for(
        lambda: (
            max([r["step"] for r in rows(run_dir, "train")], default=0) >= 8
            and max(r["step"] for r in rows(run_dir, "train"))
        )
    )
    t_signal = time.time()
    if how == "usr2":
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, env=env)
    else:  # a job in the higher-tier partition takes every CPU
        subprocess.run(
            ["sbatch", "-p", "high", "-c", str(os.cpu_count()), "-o", "/dev/null", "--wrap", "sleep 2"],
            check=True,
            env=env,
            capture_output=True,
        )
    wait_for(lambda: status(run_dir)["state"] == "preempted", timeout_s=60, poll_s=0.05)
    saved = status(run_dir)["last_step"]
    table = sweep(env, spec, "--status").splitlines()[1].split()
    assert table[1] == "preempted" and table[4] == f"{saved}/{STEPS}"
    resumed = wait_for(
        lambda: (
            status(run_dir)["state"] == "running"
            and any(r["step"] > saved for r in rows(run_dir, "train"))
            and time.time()
        ),
        timeout_s=120,
        poll_s=0.1,
    )
    wait_done(run_dir)
    ref_dir = reference.parent / "runs" / "ref" / "seed0"
    assert status(run_dir)["state"] == "completed"
    got, want = rows(run_dir, "train"), rows(ref_dir, "train")
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in want], rel=1e-5)
    assert rows(run_dir, "val")[-1]["val_loss"] == pytest.approx(
        rows(ref_dir, "val")[-1]["val_loss"], rel=1e-5
    )
    figures = {
        "how": how,
        "signal_to_resumed_step_s": round(resumed - t_signal, 1),
        "steps_lost": max(0, seen - saved),
        "checkpoint_step": saved,
        "step_at_signal": seen,
    }
    print(json.dumps(figures))
    (folder / "figures.json").write_text(json.dumps(figures))
    return figures


def test_usr2_preemption_requeues_and_matches_unpreempted(cluster, dataset, reference, tmp_path) -> None:
    figures = preempt_and_compare(cluster, tmp_path, dataset, reference, "usr2")
    assert figures["steps_lost"] == 0


def test_resubmit_picks_up_a_run_killed_outright(cluster, dataset, reference, tmp_path) -> None:
    spec = write_spec(tmp_path, "killed", dataset, [0])
    run_dir = tmp_path / "runs" / "killed" / "seed0"
    sweep(cluster, spec, "--no-wait")
    wait_for(lambda: any(r["step"] >= 12 for r in rows(run_dir, "train")))
    job_id = status(run_dir)["job_ids"][-1]
    subprocess.run(["scancel", "--full", "--signal=KILL", job_id], check=True, env=cluster)
    wait_for(
        lambda: (
            subprocess.run(
                ["squeue", "-h", "-j", job_id, "-o", "%T"], env=cluster, text=True, capture_output=True
            ).stdout.strip()
            not in ("RUNNING", "PENDING", "COMPLETING")
        )
    )
    # the job is gone; the trainer either never said so (running) or caught the step's SIGTERM (preempted)
    assert status(run_dir)["state"] in ("running", "preempted")
    out = sweep(cluster, spec)
    assert "use --resubmit" in out and "submit (" not in out
    out = sweep(cluster, spec, "--resubmit", "--max-attempts", "3")
    assert "submit (resubmit" in out, out
    st = status(run_dir)
    assert st["state"] == "completed" and st["attempts"] == 2 and len(st["job_ids"]) == 2
    steps = [r["step"] for r in rows(run_dir, "train")]
    assert steps == list(range(1, STEPS + 1))  # resumed from a checkpoint, rows past it rewritten once
