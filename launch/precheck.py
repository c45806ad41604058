"""The check before anything is submitted: every run's config, dataset, splits, backbone and resources are
resolved and verified on the login node, so a run cannot die at start-up after hours in the queue.

    >>> problems = check_plans(plans, source="sweeps/model_scaling.yaml")
    >>> print(format_problems(problems))     # one line per problem, naming the key and the fix

Each problem is one line naming the key (or file) and the fix; a problem shared by several runs (one missing
dataset) is one line listing them. Only the manifest's JSON is read: no torch, no HDF5. A run that another
spec beside this one trains too is refused (`trained_elsewhere`) unless this spec shares it (`shared`), and
then the two resolved configs must train the same thing (`shared_sources`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from launch.checks import config_diff
from launch.spec import TRAIN_ENTRY, RunPlan, SweepSpec, expand_runs, load_spec, resolve_config
from scaling.atomic import read_json
from scaling.config import ConfigError, load_yaml, to_dict

# Keys that change what a run records, not what it trains: two runs equal but for these train the same model.
NOT_TRAINING = ("run", "logging", "checkpoint")

MANIFEST = "manifest.json"
ADAPTER_ONLY = "adapter_only"
DATA_HINT = "README 'Datasets'"


def check_plans(plans: list[RunPlan], source: str) -> list[tuple[str, str]]:
    """(problem, run) pairs for every run of the plan; [] when all can start."""
    out: list[tuple[str, str]] = []
    for plan in plans:
        if plan.shared_from:
            continue  # another sweep trains it: its own launch checks its data (shared_sources, its config)
        try:
            cfg = to_dict(resolve_config(plan, source))
        except (ConfigError, ValueError) as err:
            out.append((str(err), plan.name))
            continue
        problems = check_train(cfg, plan) if plan.entry == TRAIN_ENTRY else check_downstream(cfg)
        out += [(p, plan.name) for p in problems]
    return out


def format_problems(pairs: list[tuple[str, str]]) -> list[str]:
    """One line per distinct problem, with the runs it concerns."""
    runs: dict[str, list[str]] = {}
    for problem, run in pairs:
        runs.setdefault(problem, []).append(run)
    return [f"{', '.join(names)}: {problem}" for problem, names in runs.items()]


def world_size(plan: RunPlan) -> int:
    return plan.resources.nodes * plan.resources.ranks_per_node


def check_train(cfg: dict[str, Any], plan: RunPlan) -> list[str]:
    """A pretraining run: batch divisible over its ranks, dataset and both splits present and large enough."""
    problems = []
    budget, data = cfg["budget"], cfg["data"]
    world = world_size(plan)
    per_pass = budget["micro_batch_events"] * world
    if budget["global_batch_events"] % per_pass:
        fit = [
            m
            for m in range(1, budget["micro_batch_events"])
            if budget["global_batch_events"] % (m * world) == 0
        ]
        fix = (
            f"set budget.micro_batch_events={fit[-1]} for this run"
            if fit
            else f"make budget.global_batch_events a multiple of {world} or change the GPU count"
        )
        problems.append(
            f"budget.global_batch_events={budget['global_batch_events']} is not a multiple of "
            f"budget.micro_batch_events ({budget['micro_batch_events']}) x {world} ranks; {fix}"
        )
    if data["simulate_if_missing"]["enabled"] and not _has_manifest(data["dataset_dir"]):
        return problems  # the first run simulates it
    need = {data["train_split"]: 1, data["val_split"]: data["val_events"]}
    problems += check_dataset(
        data["dataset_dir"], need, "data.dataset_dir", "data.train_split / data.val_split"
    )
    return problems


def check_downstream(cfg: dict[str, Any]) -> list[str]:
    """A downstream run: dataset with both labelled splits holding the budgets, and a backbone run folder."""
    if "dataset" not in cfg:
        return []
    need = {cfg["train_split"]: cfg["n_train_events"], cfg["eval_split"]: cfg["n_eval_events"]}
    problems = check_dataset(cfg["dataset"], need, "dataset", "train_split / eval_split")
    backbone = str(cfg.get("backbone") or ADAPTER_ONLY)
    if backbone != ADAPTER_ONLY and not (Path(backbone) / "config.yaml").is_file():
        if not (Path(backbone).parent.parent / "config.yaml").is_file():  # a checkpoint step folder
            problems.append(f"backbone={backbone}: no pretraining run there (no config.yaml); train it first")
    return problems


def check_dataset(root: str, need: dict[str, int], key: str, split_keys: str) -> list[str]:
    """The dataset's manifest exists and lists each split with at least `need[split]` events."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return [
            f"{key}={root}: no {MANIFEST} there; create it (python -m scaling.data import-tpcpp SRC "
            f"--out {root}, or simulate: {DATA_HINT}) or fix the path"
        ]
    try:
        splits = read_json(path).get("splits") or {}
    except (OSError, ValueError, AttributeError) as err:
        return [f"{key}={root}: unreadable manifest ({err}); re-create the dataset"]
    problems = []
    for split, n in need.items():
        if split not in splits:
            problems.append(
                f"{split_keys}: no split {split!r} in {path} (has {', '.join(sorted(splits)) or 'none'}); "
                "use one of those or re-create the dataset with it"
            )
        elif int(splits[split].get("n_events", 0)) < n:
            problems.append(
                f"split {split!r} of {path} has {splits[split].get('n_events', 0)} events, the run needs "
                f"{n}; lower the event count or use a larger dataset"
            )
    return problems


def _has_manifest(root: str) -> bool:
    return (Path(root) / MANIFEST).is_file()


def gpu_hours(plans: list[RunPlan]) -> float:
    """GPU-hours the plan asks for (nodes x GPUs per node x hours; CPU runs and shared runs count 0)."""
    return math.fsum(
        p.resources.nodes * p.resources.gpus_per_node * p.resources.hours for p in plans if not p.shared_from
    )


def training_key(config: dict[str, Any]) -> str:
    """What a run trains, as a comparable string: its resolved config less the NOT_TRAINING keys."""
    return json.dumps({k: v for k, v in config.items() if k not in NOT_TRAINING}, sort_keys=True, default=str)


def trained_elsewhere(
    spec_path: str | Path, plans: list[RunPlan], config_class: str
) -> list[tuple[str, str]]:
    """(problem, run) for each run that another spec beside this one (same folder, same config class)
    trains already: both would spend its GPU-hours (compute_scaling once duplicated model_scaling). A run this
    spec shares from another (`shared`) is not trained here: `check_shared` checks it instead."""
    spec_path = Path(spec_path).resolve()
    mine = {}
    for plan in plans:
        if plan.shared_from:
            continue
        try:
            mine[training_key(to_dict(resolve_config(plan, str(spec_path))))] = plan.name
        except (ConfigError, ValueError):
            continue  # reported by check_plans
    out = []
    for other, spec, theirs in sibling_specs(spec_path, config_class):
        keys = {}
        for p in theirs:
            if not p.shared_from:
                try:
                    keys[training_key(to_dict(resolve_config(p, str(other))))] = p.name
                except (ConfigError, ValueError):
                    continue
        for key, run in mine.items():
            if key in keys:
                share = f"shared: {{{run}: {spec.name}/{keys[key]}}}"
                out.append((f"sweep {spec.name} ({other}) trains the same config as its run {keys[key]}; "
                            f"share that run ({share}; its budget checkpoints give the compute points) "
                            "or change this one", run))  # fmt: skip
    return out


def sibling_specs(spec_path: str | Path, config_class: str) -> list[tuple[Path, SweepSpec, list[RunPlan]]]:
    """(path, spec, runs) of every other spec in the folder of `spec_path` with the same config class; a
    broken neighbour is its own launch's problem, not this one's, and is left out."""
    spec_path = Path(spec_path).resolve()
    out = []
    for other in sorted(spec_path.parent.glob("*.yaml")):
        if other.resolve() == spec_path or not _same_class(other, config_class):
            continue
        try:
            spec, base, site = load_spec(other)
            out.append((other, spec, expand_runs(spec, base, site, str(other))))
        except (ConfigError, ValueError, OSError):
            continue
    return out


def training_diff(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Dotted keys where two resolved configs train differently (NOT_TRAINING keys aside)."""

    def strip(cfg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in cfg.items() if k not in NOT_TRAINING}

    return config_diff(strip(mine), strip(theirs))


def shared_sources(
    spec_path: str | Path, plans: list[RunPlan], config_class: str
) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """({run: the run folder of the sweep that trains it}, (problem, run) pairs) for this spec's shared runs.

    A shared run is refused (a problem) unless a spec beside this one has that sweep name and run, and that
    run's resolved config is the one this spec would have trained (NOT_TRAINING keys aside)."""
    shared = [p for p in plans if p.shared_from]
    if not shared:
        return {}, []
    spec_path = Path(spec_path)
    siblings = sibling_specs(spec_path, config_class)
    dirs: dict[str, Path] = {}
    out: list[tuple[str, str]] = []
    for plan in shared:
        sweep, run = plan.shared_from.split("/")
        found = [(path, spec, theirs) for path, spec, theirs in siblings if spec.name == sweep]
        if len(found) != 1:
            where = f"{len(found)} specs" if found else "no spec"
            out.append((f"shared: {where} named {sweep} beside {spec_path} (same config_class); name one "
                        "sweep, or train the run here (remove it from shared)", plan.name))  # fmt: skip
            continue
        path, spec, theirs = found[0]
        other = next((p for p in theirs if p.name == run), None)
        if other is None or other.shared_from:
            why = f"has no run {run}" if other is None else f"shares {run} from {other.shared_from} itself"
            runs = ", ".join(p.name for p in theirs if not p.shared_from)
            out.append((f"shared: sweep {sweep} ({path}) {why}; name one of its runs ({runs})", plan.name))
            continue
        try:
            mine = to_dict(resolve_config(plan, str(spec_path)))
            keys = training_diff(mine, to_dict(resolve_config(other, str(path))))
        except (ConfigError, ValueError) as err:
            out.append((str(err), plan.name))
            continue
        if keys:
            shown = ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
            out.append((f"shared: {plan.name} would not train what {sweep}/{run} ({path}) trains: {shown} "
                        "differ; make the configs equal or train it here (remove it from shared)",
                        plan.name))  # fmt: skip
            continue
        dirs[plan.name] = Path(spec.runs_dir) / spec.name / run
    return dirs, out


def _same_class(path: Path, config_class: str) -> bool:
    """Read the YAML only: loading a spec of another config class may import torch (downstream)."""
    try:
        data = load_yaml(path)
    except (ConfigError, ValueError, OSError):
        return False
    return (
        isinstance(data, dict)
        and data.get("config_class", "scaling.train.config.TrainConfig") == config_class
    )
