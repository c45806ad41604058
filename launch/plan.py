"""What `launch/sweep.py` does: prepare run directories, decide per run what to submit, run post steps."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from launch import ledger
from launch.sites import SiteConfig
from launch.spec import RunPlan, SweepSpec, expand_runs, load_spec, resolve_config
from scaling.config import ConfigError, to_dict

log = logging.getLogger(__name__)


def select(plans: list[RunPlan], only: str, source: str) -> list[RunPlan]:
    if not only:
        return plans
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    known = {p.name for p in plans}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ConfigError(f"{source}: --only {missing[0]}: no such run (runs: {', '.join(sorted(known))})")
    return [p for p in plans if p.name in wanted]


def job_alive(job_id: str) -> bool:
    from launch.executor import slurm_job_alive
    from launch.local import local_job_alive

    return local_job_alive(job_id) if job_id.startswith("local-") else slurm_job_alive(job_id)


def decide(status: dict[str, Any], resubmit: bool, max_attempts: int) -> tuple[bool, str]:
    """(submit?, why) for one run: never duplicate a live or completed run; deterministic failures stay."""
    state = status.get("state", "pending")
    attempts = int(status.get("attempts", 0))
    jobs = status.get("job_ids") or []
    if state == "completed":
        return False, "completed"
    if state == "pending" and not jobs:
        return True, "new"
    if jobs and state in ("submitted", "running", "preempted") and job_alive(jobs[-1]):
        return False, f"{state} (job {jobs[-1]})"
    if ledger.is_deterministic_failure(status):
        return False, f"failed deterministically (exit {status.get('exit_code')}): {status.get('reason')}"
    if not resubmit:
        return False, f"{state}, job gone: use --resubmit"
    if attempts >= max_attempts:
        return False, f"{state}: {attempts} attempts reached --max-attempts {max_attempts}"
    return True, f"resubmit ({state}, attempt {attempts + 1})"


def prepare(spec: SweepSpec, plans: list[RunPlan], site: SiteConfig, source: str, executor: str) -> Path:
    sweep_dir = Path(spec.runs_dir) / spec.name
    for plan in plans:
        resolve_config(plan, source)  # every config is valid before any run starts
    for plan in plans:
        ledger.write_run_config(sweep_dir / plan.name, to_dict(resolve_config(plan, source)))
    ledger.write_sweep(
        sweep_dir,
        {
            "name": spec.name,
            "spec": str(Path(source).resolve()),
            "site": to_dict(site),
            "executor": executor,
            "runs": {p.name: p.to_json() for p in plans},
        },
    )
    return sweep_dir


def print_plan(plans: list[RunPlan], executor: str) -> None:
    print(f"{len(plans)} runs, executor {executor}")
    for p in plans:
        r = p.resources
        values = " ".join(f"{k}={v}" for k, v in p.values.items())
        print(
            f"  {p.name:24s} {values:40s} {r.nodes}x{r.gpus_per_node or 0} GPU "
            f"{r.ranks_per_node} ranks/node  {p.time_min} min x {p.allocations}"
        )


def execute(args: argparse.Namespace) -> int:
    from launch.executor import choose_executor

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    spec, base, site = load_spec(args.spec)
    plans = select(expand_runs(spec, base, site, args.spec), args.only, args.spec)
    sweep_dir = Path(spec.runs_dir) / spec.name
    if args.status:
        print(
            ledger.format_table(
                ledger.status_rows(sweep_dir, [p.name for p in plans], {p.name: _budget(p) for p in plans})
            )
        )
        return 0
    executor = choose_executor(
        args.executor if args.executor != "auto" or site.executor == "auto" else site.executor
    )
    if args.dry_run:
        print_plan(plans, executor)
        return 0
    prepare(spec, plans, site, args.spec, executor)
    max_attempts = args.max_attempts or spec.executor.max_attempts
    todo = []
    for plan in plans:
        submit, why = decide(ledger.read_status(sweep_dir / plan.name), args.resubmit, max_attempts)
        print(f"{plan.name}: {'submit' if submit else 'skip'} ({why})")
        if submit:
            todo.append(plan)
    launch(todo, sweep_dir, site, spec, executor, wait=not args.no_wait)
    states = [ledger.read_status(sweep_dir / p.name).get("state") for p in plans]
    if all(s == "completed" for s in states) and not args.only:
        run_post(spec)
    print(f"runs: {sweep_dir}/  (status: python launch/sweep.py {args.spec} --status)")
    return 0 if all(s != "failed" for s in states) else 1


def launch(
    todo: list[RunPlan], sweep_dir: Path, site: SiteConfig, spec: SweepSpec, executor: str, wait: bool
) -> None:
    if not todo:
        return
    if executor == "local":
        from launch.local import parallel_slots, run_local

        run_local(todo, sweep_dir, parallel_slots(todo, spec.executor.max_parallel))
        return
    from launch.executor import submit_slurm, wait_jobs

    jobs = submit_slurm(todo, sweep_dir, site, spec.executor)
    for name, job_id in jobs.items():
        plan = next(p for p in todo if p.name == name)
        ledger.record_submission(sweep_dir / name, job_id, _budget(plan))
        ledger.record_job(sweep_dir, name, job_id)
        print(f"  {name}: job {job_id}")
    if wait:
        wait_jobs(list(jobs.values()))


def post_commands(spec: SweepSpec) -> list[list[str]]:
    out = []
    for text in spec.post:
        argv = shlex.split(text.format(name=spec.name, runs_dir=spec.runs_dir))
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        out.append(argv)
    return out


def run_post(spec: SweepSpec) -> None:
    """Post steps after every run completed; `python -m MODULE` with MODULE absent is skipped, said so."""
    for argv in post_commands(spec):
        if len(argv) > 2 and argv[1] == "-m" and importlib.util.find_spec(argv[2]) is None:
            print(f"post: skipped `{' '.join(argv[2:])}`: module {argv[2]} is not installed yet")
            continue
        print(f"post: {' '.join(argv[1:]) if argv[0] == sys.executable else ' '.join(argv)}", flush=True)
        done = subprocess.run(argv)
        if done.returncode != 0:
            print(f"post: exit code {done.returncode}")
        elif "--out" in argv[:-1]:
            print(f"report: {argv[argv.index('--out') + 1]}")


def _budget(plan: RunPlan) -> int:
    return int((plan.config.get("budget") or {}).get("steps", 0))
