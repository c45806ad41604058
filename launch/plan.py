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
from launch.checks import changed_keys, dependency_problem, describe_change, has_started, supersede
from launch.precheck import check_plans, format_problems, gpu_hours, shared_sources, trained_elsewhere
from launch.sites import SiteConfig
from launch.spec import RunPlan, SweepSpec, expand_runs, import_config_class, load_spec, resolve_config
from scaling.config import ConfigError, to_dict
from scaling.rundir import LIVE_STATES, is_deterministic_failure

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
    if jobs and state in LIVE_STATES and job_alive(jobs[-1]):
        return False, f"{state} (job {jobs[-1]})"
    if is_deterministic_failure(status):
        return False, f"failed deterministically (exit {status.get('exit_code')}): {status.get('reason')}"
    if not resubmit:
        return False, f"{state}, job gone: use --resubmit"
    if attempts >= max_attempts:
        return False, f"{state}: {attempts} attempts reached --max-attempts {max_attempts}"
    return True, f"resubmit ({state}, attempt {attempts + 1})"


def config_changes(
    sweep_dir: Path, plans: list[RunPlan], source: str
) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """(started runs whose config.yaml differs from what the spec resolves now: name -> keys, new configs).

    Every config is built strictly first, so a bad value stops the sweep before any run starts."""
    configs = {p.name: to_dict(resolve_config(p, source)) for p in plans}
    changed = {}
    for plan in plans:
        if plan.shared_from:
            continue  # trained and guarded by the sweep it is shared from
        if has_started(ledger.run_status(sweep_dir, plan.name)):
            keys = changed_keys(
                sweep_dir / plan.name, configs[plan.name], import_config_class(plan.config_class)
            )
            if keys:
                changed[plan.name] = keys
    return changed, configs


def prepare(
    spec: SweepSpec,
    plans: list[RunPlan],
    all_plans: list[RunPlan],
    site: SiteConfig,
    source: str,
    executor: str,
) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Write config.yaml of every run but started ones whose config changed (returned), shared.json of every
    run another sweep trains (pointing at its folder there), and sweep.json."""
    sweep_dir = Path(spec.runs_dir) / spec.name
    changed, configs = config_changes(sweep_dir, plans, source)
    shared_dirs, _ = shared_sources(source, plans, spec.config_class)  # problems stopped the launch before
    for plan in plans:
        if plan.shared_from:
            ledger.write_shared(sweep_dir / plan.name, plan.shared_from, shared_dirs[plan.name])
        elif plan.name not in changed:
            ledger.write_run_config(sweep_dir / plan.name, configs[plan.name])
    ledger.write_sweep(
        sweep_dir,
        {
            "name": spec.name,
            "spec": str(Path(source).resolve()),
            "site": to_dict(site),
            "executor": executor,
            "runs": {p.name: p.to_json() for p in all_plans},
        },
    )
    return changed, configs


def on_changed(
    sweep_dir: Path, name: str, keys: list[str], config: dict[str, Any], rerun: bool
) -> tuple[bool, str]:
    """(submit?, why) for a started run whose config changed: never reused silently, rerun only when asked."""
    status = ledger.run_status(sweep_dir, name)
    state = status.get("state", "pending")
    what = describe_change(state, keys)
    jobs = status.get("job_ids") or []
    if jobs and state in LIVE_STATES and job_alive(jobs[-1]):
        return False, f"{what}; job {jobs[-1]} still runs it: wait for it or cancel it first"
    if not rerun:
        return False, f"{what}; use --rerun-changed or a new sweep name"
    old = supersede(sweep_dir, name)
    ledger.write_run_config(sweep_dir / name, config)
    return True, f"{what}: rerun afresh, the old run moved to {old}"


def print_plan(
    plans: list[RunPlan], executor: str, changed: dict[str, list[str]], site: SiteConfig | None = None
) -> None:
    where = f" on site {site.name}" if site else ""
    n_shared = sum(1 for p in plans if p.shared_from)
    shared = f" ({n_shared} shared from other sweeps, trained there)" if n_shared else ""
    print(f"{len(plans)} runs{shared}, executor {executor}{where}")
    for p in plans:
        r = p.resources
        values = " ".join(f"{k}={v}" for k, v in p.values.items())
        if p.shared_from:
            print(f"  {p.name:24s} {values:40s} shared from {p.shared_from}: no GPU-hours here")
            continue
        note = f"  ({describe_change('started', changed[p.name])})" if p.name in changed else ""
        print(
            f"  {p.name:24s} {values:40s} {r.nodes}x{r.gpus_per_node or 0} GPU "
            f"{r.ranks_per_node} ranks/node  {r.hours:g} h = {p.time_min} min x {p.allocations}{note}"
        )
    print(f"total: {gpu_hours(plans):,.0f} GPU-hours")


def show(plans: list[RunPlan], what: list[str], spec: SweepSpec, site: SiteConfig, source: str) -> None:
    """--show config: each run's resolved config.yaml; --show sbatch: each run's rendered sbatch script."""
    from launch.sbatch import render_sbatch
    from scaling.config import dump_yaml

    sweep_dir = Path(spec.runs_dir) / spec.name
    for plan in plans:
        if "config" in what:
            print(f"--- {sweep_dir / plan.name / 'config.yaml'}")
            print(dump_yaml(to_dict(resolve_config(plan, source))), end="")
        if "sbatch" in what:
            print(
                f"--- {sweep_dir / plan.name / 'train.sbatch'} (for plain sbatch; the launcher submits alike)"
            )
            print(render_sbatch(plan, site, (sweep_dir / plan.name).resolve()), end="")


def precheck(plans: list[RunPlan], source: str, spec: SweepSpec) -> list[str]:
    """One line per problem that would stop a run at start-up, train it twice or share a run that is not the
    same training ([] when none)."""
    shared = shared_sources(source, plans, spec.config_class)[1]
    return format_problems(
        check_plans(plans, source) + trained_elsewhere(source, plans, spec.config_class) + shared
    )


def plan_executor(requested: str, site: SiteConfig) -> str:
    """The executor a launch would use; without a controller here a Slurm site still plans as slurm."""
    choice = requested if requested != "auto" else site.executor
    if choice == "auto":
        from launch.executor import slurm_available  # submitit: only when a controller must be asked

        return "slurm" if slurm_available() else "local"
    return choice


def dependency_line(spec: SweepSpec) -> str | None:
    if not spec.depends_on:
        return None
    problem = dependency_problem(spec.runs_dir, spec.depends_on)
    return f"depends on {spec.depends_on}: " + (problem or "all runs completed")


def execute(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    spec, base, site = load_spec(args.spec)
    all_plans = expand_runs(spec, base, site, args.spec)
    plans = select(all_plans, args.only, args.spec)
    sweep_dir = Path(spec.runs_dir) / spec.name
    depends = dependency_line(spec)
    if args.status:
        budgets = {p.name: p.budget_steps for p in plans}
        print(ledger.format_table(ledger.status_rows(sweep_dir, [p.name for p in plans], budgets)))
        print(depends or "", end="\n" if depends else "")
        return 0
    if depends and not args.dry_run and dependency_problem(spec.runs_dir, spec.depends_on):
        raise RuntimeError(f"{args.spec}: {depends}; start this sweep once they are")
    if args.dry_run:
        print_plan(
            plans, plan_executor(args.executor, site), config_changes(sweep_dir, plans, args.spec)[0], site
        )
        print(depends or "", end="\n" if depends else "")
        show(plans, args.show or [], spec, site, args.spec)
        problems = precheck(plans, args.spec, spec)
        for line in problems:
            print(f"problem: {line}")
        if problems:
            print(f"{len(problems)} problem(s): a launch would submit nothing until they are fixed")
        return 0
    problems = precheck(plans, args.spec, spec)
    if problems:
        for line in problems:
            print(f"problem: {line}", file=sys.stderr)
        raise ConfigError(f"{args.spec}: {len(problems)} problem(s) above; nothing submitted")
    from launch.executor import choose_executor

    executor = choose_executor(
        args.executor if args.executor != "auto" or site.executor == "auto" else site.executor
    )
    changed, configs = prepare(spec, plans, all_plans, site, args.spec, executor)
    max_attempts = args.max_attempts or spec.executor.max_attempts
    todo = []
    for plan in plans:
        if plan.shared_from:
            state = ledger.read_status(sweep_dir / plan.name).get("state", "pending")
            print(f"{plan.name}: skip (shared from {plan.shared_from}: {state} there)")
            continue
        if plan.name in changed:
            keys = changed[plan.name]
            submit, why = on_changed(sweep_dir, plan.name, keys, configs[plan.name], args.rerun_changed)
        else:
            submit, why = decide(ledger.run_status(sweep_dir, plan.name), args.resubmit, max_attempts)
        print(f"{plan.name}: {'submit' if submit else 'skip'} ({why})")
        if submit:
            todo.append(plan)
    launch(todo, sweep_dir, site, spec, executor, wait=not args.no_wait)
    states = [ledger.read_status(sweep_dir / p.name).get("state") for p in plans]
    if (
        all(s == "completed" for s in states)
        and not args.only
        and not changed.keys() - {p.name for p in todo}
    ):
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
        ledger.record_submission(sweep_dir / name, job_id, plan.budget_steps)
        ledger.record_job(sweep_dir, name, job_id)
        print(f"  {name}: job {job_id}")
    if wait:
        wait_jobs(jobs, lambda name: ledger.read_status(sweep_dir / name).get("state", "pending"))


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
