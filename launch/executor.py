"""Submitting runs: submitit on Slurm (or this machine), and the `Checkpointable` each task runs.

Each Slurm task runs one rank of `python -m scaling.train <run>/config.yaml --run-dir <run>` as a child
process; the SLURM_* variables it inherits are all the trainer needs to find its rank. On preemption or at the
time limit Slurm sends USR2 to every process of the step; submitit calls `TrainJob.checkpoint` in rank 0,
which forwards the signal to its child, waits until the trainer has saved a checkpoint and exited (code 3),
and only then lets submitit requeue the job. Where preemption sends SIGTERM instead (submitit ignores it), the
trainer checkpoints and exits 3 all the same and `TrainJob` requeues the job with `scontrol requeue`. The
requeued job starts the trainer again, which resumes from the newest complete checkpoint: nothing but the run
directory's path is pickled.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

from launch.ledger import update_status
from launch.sbatch import SITE_KEYS, site_options
from launch.sites import SiteConfig
from launch.spec import TRAIN_ENTRY, ExecutorConfig, RunPlan
from scaling.rundir import CONFIG, EXIT_OK, EXIT_PREEMPTED, FAILED, PREEMPTED, SELF_REPORTED_EXIT_CODES

log = logging.getLogger(__name__)
CHECKPOINT_WAIT_S = 600.0
REQUEUE_WAIT_S = 300.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def train_command(run_dir: Path, entry: str = TRAIN_ENTRY) -> list[str]:
    """One rank of a run: `python -m <entry> <run>/config.yaml --run-dir <run>` (scaling.train by default)."""
    return [sys.executable, "-m", entry, str(run_dir / CONFIG), "--run-dir", str(run_dir)]


def slurm_available(timeout_s: float = 3.0) -> bool:
    """sbatch installed AND a controller answering: installed clients alone do not make a cluster."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return False
    try:
        done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "UP" in done.stdout


def choose_executor(requested: str) -> str:
    if requested == "auto":
        return "slurm" if slurm_available() else "local"
    if requested == "slurm" and not slurm_available():
        raise RuntimeError(
            "--executor slurm: no Slurm controller answers `scontrol ping`; start one or use --executor local"
        )
    return requested


class TrainJob(submitit.helpers.Checkpointable):
    """One rank of one run; requeues itself on preemption or timeout, state kept in the run directory."""

    def __init__(self, run_dir: str, entry: str = TRAIN_ENTRY) -> None:
        self.run_dir = run_dir
        self.entry = entry
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "entry": self.entry}  # never the child process, never a model

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.run_dir, self._proc = state["run_dir"], None
        self.entry = state.get("entry", TRAIN_ENTRY)

    def __call__(self) -> int:
        run_dir = Path(self.run_dir)
        env = {**os.environ, "DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu")}
        self._proc = subprocess.Popen(train_command(run_dir, self.entry), env=env)
        # poll, not wait(): checkpoint() runs inside a signal handler that interrupts this loop, and a
        # reentrant Popen.wait() would spin on the lock the interrupted one holds
        while self._proc.poll() is None:
            time.sleep(0.2)
        code = self._proc.returncode
        self._proc = None
        if code == EXIT_OK:
            return EXIT_OK
        if code == EXIT_PREEMPTED and os.environ.get("SLURM_JOB_ID"):
            self._requeue_after_term(run_dir)
        if _rank() == 0 and code not in SELF_REPORTED_EXIT_CODES:
            update_status(run_dir, state=FAILED, exit_code=code, reason=f"trainer exited with code {code}")
        raise RuntimeError(f"{run_dir}: trainer exited with code {code} (see status.json)")

    def _requeue_after_term(self, run_dir: Path) -> None:
        """The trainer checkpointed on a signal submitit never saw: SIGTERM, which Slurm sends on preemption
        at sites without `preempt_send_user_signal` (submitit bypasses it). While the job still runs (a
        preemption's grace time), requeue it ourselves (rank 0), or it would end FAILED with its checkpoint
        unused, then wait for Slurm to stop this task. A job whose batch script was killed or that was
        cancelled is left to `--resubmit`."""
        job = os.environ["SLURM_JOB_ID"]
        state = _job_state(job)
        if state != "RUNNING":  # killed or cancelled (its batch script gone): the run waits for --resubmit
            log.warning(
                "%s: trainer stopped on a signal while job %s is %s: not requeued", run_dir, job, state
            )
            return
        if _rank() == 0:
            update_status(run_dir, state=PREEMPTED)
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                log.error("%s: scontrol requeue %s failed: %s", run_dir, job, done.stderr.strip())
                return
            log.warning("%s: trainer checkpointed on a preemption signal; requeued job %s", run_dir, job)
        deadline = time.time() + REQUEUE_WAIT_S
        while time.time() < deadline:  # Slurm kills this task as it requeues the job
            time.sleep(1.0)
        log.error("%s: job %s still running %.0f s after its requeue", run_dir, job, REQUEUE_WAIT_S)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Forward the signal and wait for the trainer's own checkpoint before submitit requeues."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGUSR2)
            deadline = time.time() + CHECKPOINT_WAIT_S
            while not _exited(proc) and time.time() < deadline:
                time.sleep(0.1)
            if not _exited(proc):
                log.error("%s: trainer did not checkpoint within %.0f s", self.run_dir, CHECKPOINT_WAIT_S)
        update_status(Path(self.run_dir), state=PREEMPTED)
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, self.entry))


def _exited(proc: subprocess.Popen) -> bool:
    """True once the child ended (a zombie counts: the interrupted poll loop reaps it)."""
    if proc.poll() is not None:
        return True
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def squeue(job_ids: list[str], fields: str, timeout_s: float) -> subprocess.CompletedProcess[str] | None:
    """`squeue -h -j IDS -o FIELDS` (no header), or None when squeue is missing or did not answer in time."""
    argv = ["squeue", "-h", "-j", ",".join(str(j) for j in job_ids), "-o", fields]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _job_state(job: str) -> str:
    """Slurm's state of a job (RUNNING while a preemption's grace time runs; COMPLETING, CANCELLED, FAILED
    once its batch script was killed or it was cancelled), or "UNKNOWN"."""
    done = squeue([job], "%T", timeout_s=30)
    return (done.stdout.strip() if done else "") or "UNKNOWN"


def _rank() -> int:
    return int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0")))


def slurm_parameters(plan: RunPlan, site: SiteConfig) -> dict[str, Any]:
    """submitit's slurm_* options for one run (multi-node: one task per GPU, or tasks_per_node on CPU)."""
    res = plan.resources
    params: dict[str, Any] = {
        "nodes": res.nodes,
        "tasks_per_node": res.ranks_per_node,
        "cpus_per_task": res.cpus_per_task,
        "mem_gb": res.mem_gb,
        "timeout_min": plan.time_min,
        "name": plan.name,
        "slurm_signal_delay_s": site.signal_delay_s,
    }
    extra: dict[str, Any] = {"requeue": True}
    for option in site_options(plan, site):  # the same options the rendered sbatch script lists
        if not option.extra and option.key == "gpus-per-node":
            params["gpus_per_node"] = option.value
        elif not option.extra and option.key in SITE_KEYS:
            params[f"slurm_{option.key}"] = option.value
        else:  # --exclusive and the site's extra lines
            extra[option.key.replace("-", "_")] = option.value
    params["slurm_additional_parameters"] = extra
    # the job unpickles launch.executor.TrainJob: make this checkout importable there
    params["slurm_setup"] = [f"export PYTHONPATH={REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}", *site.setup]
    return params


def submit_slurm(
    plans: list[RunPlan], sweep_dir: Path, site: SiteConfig, opts: ExecutorConfig, folder: Path | None = None
) -> dict[str, str]:
    """Submit each run as one job; returns run name -> job id."""
    folder = folder or sweep_dir.resolve() / ".submitit" / "%j"
    jobs: dict[str, str] = {}
    for plan in plans:
        executor = submitit.AutoExecutor(
            folder=str(folder),
            cluster="slurm",
            slurm_max_num_timeout=max(opts.max_requeues, plan.allocations),
        )
        executor.update_parameters(**slurm_parameters(plan, site))
        job = executor.submit(TrainJob(str((sweep_dir / plan.name).resolve()), plan.entry))
        jobs[plan.name] = str(job.job_id)
    return jobs


def slurm_job_alive(job_id: str) -> bool:
    """Pending, running, requeued or suspended according to squeue."""
    done = squeue([job_id], "%T", timeout_s=10)
    return done is not None and done.returncode == 0 and any(s in ALIVE_STATES for s in done.stdout.split())


ALIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "CONFIGURING", "COMPLETING", "REQUEUE_HOLD",
                "REQUEUE_FED")  # fmt: skip


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> Slurm state from one squeue call; a job squeue no longer lists is absent."""
    done = squeue(job_ids, "%i %T", timeout_s=30)
    if done is None:
        return {}
    pairs = (line.split() for line in done.stdout.splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def wait_jobs(
    jobs: dict[str, str],
    run_state: Callable[[str], str] = lambda name: "?",
    poll_s: float = 2.0,
    timeout_s: float = 3600.0,
) -> None:
    """Wait while any job lives, printing each state change ("m3 (job 12): PENDING -> RUNNING"); a job that
    left the queue is shown with its run's state (`run_state(name)`: status.json's state)."""
    deadline = time.time() + timeout_s
    last: dict[str, str] = {}
    while True:
        states = slurm_states(list(jobs.values()))
        for name, job in jobs.items():
            state = states.get(job) or f"left the queue (run {run_state(name)})"
            if state != last.get(name):
                was = f"{last[name]} -> " if name in last else ""
                print(f"  {time.strftime('%H:%M:%S')} {name} (job {job}): {was}{state}", flush=True)
                last[name] = state
        if not any(s in ALIVE_STATES for s in states.values()):
            return
        if time.time() > deadline:
            print(f"  still running after {timeout_s / 60:.0f} min; follow with --status", flush=True)
            return
        time.sleep(poll_s)
