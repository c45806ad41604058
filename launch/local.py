"""Running runs on this machine without Slurm: several at a time as the cores allow.

Same run directories, statuses and resume semantics as on Slurm: each run is the trainer's own entry point
(one process per rank, ranks found through RANK / WORLD_SIZE / MASTER_ADDR), it resumes from its newest
complete checkpoint when started again, and status.json records attempts and a `local-<pid>` job id.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from launch.executor import train_command
from launch.ledger import read_status, record_job, record_submission, update_status
from launch.spec import RunPlan
from scaling.rundir import ACTIVE_STATES, EXIT_OK, FAILED, LAUNCH_LOG, PENDING, SELF_REPORTED_EXIT_CODES

log = logging.getLogger(__name__)


def parallel_slots(plans: list[RunPlan], max_parallel: int, n_cores: int | None = None) -> int:
    """Runs at once: max_parallel, or as many as fit in the cores (ranks x cpus per task each)."""
    if max_parallel > 0:
        return max_parallel
    n_cores = n_cores or os.cpu_count() or 1
    per_run = max((p.resources.ranks_per_node * p.resources.cpus_per_task for p in plans), default=1)
    return max(1, n_cores // per_run)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_run(plan: RunPlan, run_dir: Path) -> list[subprocess.Popen]:
    """Start every rank of one run; output goes to run_dir/launch.log."""
    world = plan.resources.ranks_per_node * plan.resources.nodes
    port = str(_free_port())
    procs = []
    log_file = (run_dir / LAUNCH_LOG).open("ab")
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu"),
            "OMP_NUM_THREADS": str(plan.resources.cpus_per_task),
        }
        for key in [k for k in env if k.startswith("SLURM_")]:
            env.pop(key)  # a local run must not mistake a surrounding allocation for its own
        procs.append(
            subprocess.Popen(
                train_command(run_dir, plan.entry), env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
        )
    log_file.close()
    return procs


def _finish(run_dir: Path, codes: list[int]) -> None:
    """A rank that died without the trainer saying why (killed, crashed) leaves a failed status."""
    code = max(codes, key=abs) if any(codes) else EXIT_OK
    status = read_status(run_dir)
    if code not in (EXIT_OK, *SELF_REPORTED_EXIT_CODES) or status.get("state") in ACTIVE_STATES:
        if code != EXIT_OK:
            update_status(
                run_dir,
                state=FAILED,
                exit_code=code,
                reason=f"trainer exited with code {code}; see launch.log",
            )


def run_local(plans: list[RunPlan], sweep_dir: Path, slots: int, poll_s: float = 0.5) -> dict[str, str]:
    """Run `plans` to the end, `slots` at a time; returns run name -> final state."""
    queue = list(plans)
    active: dict[str, list[subprocess.Popen]] = {}
    while queue or active:
        while queue and len(active) < slots:
            plan = queue.pop(0)
            run_dir = sweep_dir / plan.name
            procs = start_run(plan, run_dir)
            active[plan.name] = procs
            job_id = f"local-{procs[0].pid}"
            record_submission(run_dir, job_id, plan.budget_steps)
            record_job(sweep_dir, plan.name, job_id)  # kept even where the entry point rewrites status.json
            log.info("started %s (pid %d)", plan.name, procs[0].pid)
            print(f"  started {plan.name}", flush=True)
        time.sleep(poll_s)
        for name, procs in list(active.items()):
            if all(p.poll() is not None for p in procs):
                _finish(sweep_dir / name, [p.returncode for p in procs])
                state = read_status(sweep_dir / name).get("state")
                print(f"  {name}: {state}", flush=True)
                del active[name]
    return {p.name: read_status(sweep_dir / p.name).get("state", PENDING) for p in plans}


def local_job_alive(job_id: str) -> bool:
    if not job_id.startswith("local-"):
        return False
    try:
        os.kill(int(job_id.split("-", 1)[1]), 0)
    except (OSError, ValueError):
        return False
    return True
