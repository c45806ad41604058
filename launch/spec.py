"""Sweep specs: a YAML study expanded into runs, validated before anything is submitted.

    name: model_scaling
    base: ../scaling/train/configs/tiny_cpu.yaml     # relative to the spec file, or an inline mapping
    overrides: {budget.steps: 300}                    # dotted keys or nested mappings (or a when/set list)
    axes:
      grid: {model.name: [m1, m2], seed: [0, 1]}     # Cartesian product
      zip: {optimizer.lr: [1e-3, 5e-4], budget.steps: [100, 200]}   # walked together
    resources:
      default: {nodes: 1, gpus_per_node: 1, hours: 10}
      m3: {nodes: 1, gpus_per_node: 4, hours: 20}    # per model name (the paper's Table 1)
    site: perlmutter-gpu
    site_overrides: {account: m1234}
    executor: {max_parallel: 2, max_attempts: 3}
    post: ["python -m analysis.report runs/{name}/ --out runs/{name}/report"]

A study of another entry point (the downstream adapters) names it and its config class, can take its axis
values from the runs of an earlier sweep and wait for that sweep (`launch/axes.py` has the axis syntax):

    entry: analysis.downstream                        # python -m <entry> <run>/config.yaml --run-dir <run>
    config_class: analysis.downstream.config.DownstreamConfig
    depends_on: model-scaling                         # refuse to start until its runs are all completed
    axes: {backbone: {runs_of: model-scaling, plus: [adapter_only]}, task: [pid, noise]}
    run_name: "{task}-{backbone_name}"

A study can share a run with another study instead of training it again: `shared` maps one of its run
names to `<other sweep>/<run>`, a run of a spec beside it (same folder, same config class) that trains exactly
the config this one would (keys under run, logging and checkpoint aside). The launcher plans and submits
nothing for it and counts no GPU-hours; it refuses a shared run whose config differs (`launch/precheck.py`),
and at launch it writes `<runs_dir>/<name>/<run>/shared.json` pointing at the other run's folder, which the
status table, `runs_of`, `depends_on` and the analysis (`analysis/runs.py`) follow:

    name: data_scaling
    axes: {grid: {data.fraction: [0.2, 1.0]}}
    shared: {fraction1: model_scaling/m3_steps100000}   # trained by model_scaling already

Everything here is pure but `runs_of`, which lists run folders: `load_spec` reads and validates,
`expand_runs` turns a spec into `RunPlan`s.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch.axes import (  # noqa: F401 - axis_points and run_name are part of this module's interface
    AXIS_ALIASES,
    axis_points,
    format_run_name,
    matches,
    resolve_axes,
    run_name,
    validate_axes,
    validate_overrides,
)
from launch.sites import SiteConfig, load_site
from scaling.config import (
    ConfigError,
    check_positive,
    check_range,
    doc,
    from_dict,
    has_key,
    load_yaml,
    set_dotted,
    to_dict,
)

TRAIN_ENTRY = "scaling.train"
TRAIN_CONFIG = "scaling.train.config.TrainConfig"


@dataclass(kw_only=True)
class ResourcesConfig:
    """What one run asks of the site."""

    nodes: int = doc("nodes per job", default=1)
    gpus_per_node: int = doc("GPUs per node = tasks (ranks) per node; 0 on CPU", default=0)
    tasks_per_node: int = doc("ranks per node when gpus_per_node is 0", default=1)
    cpus_per_task: int = doc("CPU cores per rank", default=1)
    mem_gb: float = doc("memory per node in GiB", default=4.0)
    hours: float = doc("expected wall time of the whole run (paper Table 1)", default=1.0)

    def __post_init__(self) -> None:
        check_range(self, "nodes", "tasks_per_node", "cpus_per_task", low=1)
        check_positive(self, "gpus_per_node", allow_zero=True)
        check_positive(self, "hours", "mem_gb")

    @property
    def ranks_per_node(self) -> int:
        return self.gpus_per_node or self.tasks_per_node


@dataclass(kw_only=True)
class ExecutorConfig:
    """How runs are started."""

    max_parallel: int = doc("local executor: runs at once (0: as many as cores allow)", default=0)
    max_attempts: int = doc("attempts per run before --resubmit gives up", default=3)
    max_requeues: int = doc("Slurm: requeues per submission (preemption + time-limit chaining)", default=20)


@dataclass(kw_only=True)
class SweepSpec:
    """One study."""

    name: str = doc("study name: runs go to <runs_dir>/<name>/")
    entry: str = doc(
        "module every rank runs: python -m <entry> <run>/config.yaml --run-dir <run>", default=TRAIN_ENTRY
    )
    config_class: str = doc("dotted path of the dataclass a run's config must build", default=TRAIN_CONFIG)
    base: str | dict[str, Any] | None = doc(
        "config the runs start from: a YAML path (relative to the spec file) or an inline mapping",
        default=None,
    )
    overrides: dict[str, Any] | list[dict[str, Any]] = doc(
        "for every run {dotted key: value}, or a list [{when: {axis: value}, set: {...}}]",
        default_factory=dict,
    )
    axes: dict[str, Any] = doc(
        "grid: {key: [values]} product; zip: {key: [values]} walked together; key: [values] = grid",
        default_factory=dict,
    )
    run_name: str = doc(
        "run name format over axis leaves, e.g. '{task}-{backbone_name}' ('' = automatic)", default=""
    )
    depends_on: str = doc(
        "sweep whose runs must all be completed first: a name under runs_dir, or a folder (with a '/')",
        default="",
    )
    shared: dict[str, str] = doc(
        "runs another sweep trains: {this sweep's run name: '<other sweep>/<run>'}; read there, not trained",
        default_factory=dict,
    )
    resources: dict[str, Any] = doc(
        "default: ResourcesConfig; <model name>: ResourcesConfig", default_factory=dict
    )
    site: str = doc("site profile in slurm/ (or a path)", default="local")
    site_overrides: dict[str, Any] = doc(
        "fields of the site profile to change (account, qos, ...)", default_factory=dict
    )
    executor: ExecutorConfig = field(default_factory=ExecutorConfig, metadata={"doc": "executor options"})
    runs_dir: str = doc("root of run directories (relative to the working directory)", default="runs")
    post: list[str] = doc(
        "shell commands run after every run completed ({name}, {runs_dir} filled in)", default_factory=list
    )

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name or ""):
            raise ValueError(f"name={self.name!r}: use letters, digits, '_', '-', '.'")
        if not isinstance(self.shared, dict):
            raise ValueError("shared must be a mapping {run name: '<other sweep>/<run>'}")
        for run, source in self.shared.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", str(source)):
                raise ValueError(
                    f"shared.{run}={source!r}: give '<other sweep>/<run>', e.g. model_scaling/m3"
                )


@dataclass(kw_only=True)
class RunPlan:
    """One expanded run: its name, axis values, resolved config tree, resources and time limit."""

    name: str
    values: dict[str, Any]
    config: dict[str, Any]
    resources: ResourcesConfig
    time_min: int
    allocations: int
    entry: str = TRAIN_ENTRY
    config_class: str = TRAIN_CONFIG
    shared_from: str = ""  # '<other sweep>/<run>' that trains this run instead (spec key `shared`)

    @property
    def budget_steps(self) -> int:
        """The config's `budget.steps` (0 where the entry point has no step budget: downstream runs)."""
        return int((self.config.get("budget") or {}).get("steps", 0))

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "values": self.values,
            "entry": self.entry,
            "resources": to_dict(self.resources),
            "time_min": self.time_min,
            "allocations": self.allocations,
        }
        return {**out, "shared_from": self.shared_from} if self.shared_from else out


def _err(path: Path | str, msg: str) -> ConfigError:
    return ConfigError(f"{path}: {msg}")


@functools.cache
def import_config_class(dotted: str) -> type:
    """The dataclass named `module.Class` (a run's config, not model code); ValueError when it is not one."""
    module, _, attr = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(
            f"cannot import {dotted!r} ({err}); give module.Class of a config dataclass"
        ) from None
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"{dotted!r} is not a dataclass; give module.Class of a config dataclass")
    return cls


def load_spec(path: str | Path) -> tuple[SweepSpec, dict[str, Any], SiteConfig]:
    """Read and validate a spec; returns (spec, base config tree, site). Errors name key and file."""
    path = Path(path)
    spec = from_dict(SweepSpec, load_yaml(path), source=str(path))
    try:
        cls = import_config_class(spec.config_class)
    except ValueError as err:
        raise _err(path, f"config_class: {err}") from None
    if importlib.util.find_spec(spec.entry.split(".")[0]) is None:
        raise _err(path, f"entry: module {spec.entry} is not importable; fix its name")
    base = _load_base(spec, path)
    if isinstance(spec.overrides, dict):
        for key, value in spec.overrides.items():
            set_dotted(base, AXIS_ALIASES.get(key, key), value)
    try:
        site = load_site(spec.site, spec.site_overrides)
    except ConfigError as err:
        raise _err(path, f"site: {err}") from None
    validate_axes(spec.axes, cls, path)
    validate_overrides(spec.overrides, spec.axes, cls, path)
    return spec, base, site


def _load_base(spec: SweepSpec, path: Path) -> dict[str, Any]:
    if isinstance(spec.base, dict):
        return _deep_copy(spec.base)
    if not spec.base:
        return {}
    base_path = (path.parent / spec.base).resolve()
    if not base_path.is_file():
        raise _err(path, f"base: {spec.base} not found (looked at {base_path}); fix the path")
    return load_yaml(base_path)


def resources_for(spec: SweepSpec, model_name: str | None, source: str) -> ResourcesConfig:
    """`resources.default` updated by `resources.<model name>`."""
    data = dict(spec.resources.get("default") or {})
    data.update(spec.resources.get(model_name or "", None) or {})
    return from_dict(ResourcesConfig, data, source=source, prefix="resources.")


def check_fits(res: ResourcesConfig, site: SiteConfig, run: str, source: str) -> None:
    """A request the site cannot satisfy is an error naming the run and the field."""
    problems = []
    if res.nodes > site.max_nodes:
        problems.append(f"nodes={res.nodes} > site max_nodes={site.max_nodes}")
    if res.gpus_per_node > site.gpus_per_node:
        problems.append(f"gpus_per_node={res.gpus_per_node} > site gpus_per_node={site.gpus_per_node}")
    if res.ranks_per_node * res.cpus_per_task > site.cpus_per_node:
        problems.append(
            f"ranks x cpus_per_task={res.ranks_per_node * res.cpus_per_task} > site "
            f"cpus_per_node={site.cpus_per_node}"
        )
    if res.mem_gb > site.mem_gb_per_node:
        problems.append(f"mem_gb={res.mem_gb} > site mem_gb_per_node={site.mem_gb_per_node}")
    if problems:
        raise ConfigError(
            f"{source}: resources of run {run}: {problems[0]} (site {site.name}); "
            "lower the request or pick another site"
        )


def time_plan(hours: float, site: SiteConfig) -> tuple[int, int]:
    """(minutes per allocation, number of chained allocations): a run longer than the site's cap requeues."""
    total_min = math.ceil(hours * 60)
    per_alloc = min(total_min, site.max_time_min)
    return per_alloc, math.ceil(total_min / per_alloc)


def run_config(
    spec: SweepSpec, base: dict[str, Any], values: dict[str, Any], labels: dict[str, Any], source: str
) -> dict[str, Any]:
    """base (+ overrides) < matching `when` overrides (nested merge) < the run's axis values."""
    cls = import_config_class(spec.config_class)
    config = _deep_copy(base)
    if isinstance(spec.overrides, list):
        for when, dotted in validate_overrides(spec.overrides, spec.axes, cls, source):
            if matches(when, values, labels):
                for key, value in dotted.items():
                    set_dotted(config, key, _deep_copy(value))
    for key, value in values.items():
        set_dotted(config, key, value)
    return config


def expand_runs(spec: SweepSpec, base: dict[str, Any], site: SiteConfig, source: str) -> list[RunPlan]:
    """Every run of the study, its config tree resolved (base + overrides + axis values + run identity)."""
    from launch.ledger import sweep_run_dirs

    axes, labels = resolve_axes(spec.axes, spec.runs_dir, sweep_run_dirs, source)
    cls = import_config_class(spec.config_class)
    plans: list[RunPlan] = []
    for values in axis_points(axes):
        name = format_run_name(spec.run_name, values, labels, source) if spec.run_name else run_name(values)
        config = run_config(spec, base, values, labels, source)
        if has_key(cls, "run"):
            config["run"] = {"name": name, "sweep": spec.name}
        model_name = (
            (config.get("model") or {}).get("name") if isinstance(config.get("model"), dict) else None
        )
        res = resources_for(spec, model_name, source)
        check_fits(res, site, name, source)
        time_min, allocations = time_plan(res.hours, site)
        plans.append(
            RunPlan(
                name=name,
                values=values,
                config=config,
                resources=res,
                time_min=time_min,
                allocations=allocations,
                entry=spec.entry,
                config_class=spec.config_class,
                shared_from=str(spec.shared.get(name, "")),
            )
        )
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(
            f"{source}: two runs share the name {dup}; make the axis values (or run_name) distinct"
        )
    unknown = [n for n in spec.shared if n not in names]
    if unknown:
        raise ConfigError(
            f"{source}: shared.{unknown[0]}: this sweep has no such run; use one of {', '.join(names)}"
        )
    return plans


def _deep_copy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deep_copy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_deep_copy(v) for v in tree]
    return tree


def resolve_config(plan: RunPlan, source: str) -> Any:
    """Strictly build the run's config (TrainConfig or the spec's config_class) before submission."""
    return from_dict(import_config_class(plan.config_class), plan.config, source=f"{source} run {plan.name}")
