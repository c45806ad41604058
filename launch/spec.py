"""Sweep specs: a YAML study expanded into runs, validated before anything is submitted.

    name: model_scaling
    base: ../scaling/train/configs/tiny_cpu.yaml     # relative to the spec file
    overrides: {budget.steps: 300}                    # dotted keys or nested mappings
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

Everything here is pure: `load_spec` reads and validates, `expand_runs` turns a spec into `RunPlan`s.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch.sites import SiteConfig, load_site
from scaling.config import ConfigError, doc, from_dict, has_key, load_yaml, set_dotted, to_dict

AXIS_ALIASES = {"model": "model.name"}


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
        for key in ("nodes", "tasks_per_node", "cpus_per_task"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be at least 1")
        if self.gpus_per_node < 0 or self.hours <= 0 or self.mem_gb <= 0:
            raise ValueError("gpus_per_node must be >= 0, hours and mem_gb > 0")

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
    base: str | None = doc("TrainConfig YAML the runs start from (relative to the spec file)", default=None)
    overrides: dict[str, Any] = doc("TrainConfig overrides for every run (dotted keys)", default_factory=dict)
    axes: dict[str, Any] = doc(
        "grid: {key: [values]} product; zip: {key: [values]} walked together", default_factory=dict
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


@dataclass(kw_only=True)
class RunPlan:
    """One expanded run: its name, axis values, resolved config tree, resources and time limit."""

    name: str
    values: dict[str, Any]
    config: dict[str, Any]
    resources: ResourcesConfig
    time_min: int
    allocations: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "values": self.values,
            "resources": to_dict(self.resources),
            "time_min": self.time_min,
            "allocations": self.allocations,
        }


def _err(path: Path, msg: str) -> ConfigError:
    return ConfigError(f"{path}: {msg}")


def load_spec(path: str | Path) -> tuple[SweepSpec, dict[str, Any], SiteConfig]:
    """Read and validate a spec; returns (spec, base TrainConfig tree, site). Errors name key and file."""
    path = Path(path)
    spec = from_dict(SweepSpec, load_yaml(path), source=str(path))
    base: dict[str, Any] = {}
    if spec.base:
        base_path = (path.parent / spec.base).resolve()
        if not base_path.is_file():
            raise _err(path, f"base: {spec.base} not found (looked at {base_path}); fix the path")
        base = load_yaml(base_path)
    for key, value in spec.overrides.items():
        set_dotted(base, AXIS_ALIASES.get(key, key), value)
    try:
        site = load_site(spec.site, spec.site_overrides)
    except ConfigError as err:
        raise _err(path, f"site: {err}") from None
    validate_axes(spec, path)
    return spec, base, site


def _train_config_cls() -> type:
    from scaling.train.config import TrainConfig  # a run's config, not model code

    return TrainConfig


def validate_axes(spec: SweepSpec, path: Path) -> None:
    """Unknown axis kinds, empty or ragged axes and keys that are not TrainConfig keys are errors."""
    cls = _train_config_cls()
    unknown = set(spec.axes) - {"grid", "zip"}
    if unknown:
        raise _err(path, f"axes: unknown kind '{sorted(unknown)[0]}' (use grid and/or zip)")
    for kind in ("grid", "zip"):
        axes = spec.axes.get(kind) or {}
        if not isinstance(axes, dict):
            raise _err(path, f"axes.{kind} must be a mapping of config key -> list of values")
        for key, values in axes.items():
            dotted = AXIS_ALIASES.get(key, key)
            if not has_key(cls, dotted):
                raise _err(path, f"axes.{kind}.{key}: '{dotted}' is not a TrainConfig key; fix its name")
            if not isinstance(values, list) or not values:
                raise _err(path, f"axes.{kind}.{key}: must be a non-empty list of values")
        lengths = {len(v) for v in axes.values()}
        if kind == "zip" and len(lengths) > 1:
            raise _err(path, f"axes.zip: lists must have equal lengths, got {sorted(lengths)}")
    for key in spec.overrides:
        if not has_key(cls, AXIS_ALIASES.get(key, key)):
            raise _err(path, f"overrides.{key}: not a TrainConfig key; fix its name")


def axis_points(axes: dict[str, Any]) -> list[dict[str, Any]]:
    """Grid product x zipped tuples, in spec order; keys resolved through AXIS_ALIASES."""
    grid = {AXIS_ALIASES.get(k, k): v for k, v in (axes.get("grid") or {}).items()}
    zipped = {AXIS_ALIASES.get(k, k): v for k, v in (axes.get("zip") or {}).items()}
    grid_points = [dict(zip(grid, combo, strict=False)) for combo in itertools.product(*grid.values())]
    n_zip = len(next(iter(zipped.values()))) if zipped else 1
    zip_points = [{k: v[i] for k, v in zipped.items()} for i in range(n_zip)]
    return [{**g, **z} for g in grid_points for z in zip_points]


def _token(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text)


def run_name(values: dict[str, Any]) -> str:
    """A readable unique name: model names as-is, other axes as <leaf><value>, joined by '_'."""
    leaves = [k.rsplit(".", 1)[-1] for k in values]
    parts = []
    for key, value in values.items():
        leaf = key.rsplit(".", 1)[-1]
        label = key.replace(".", "-") if leaves.count(leaf) > 1 else leaf
        parts.append(_token(value) if key == "model.name" else f"{label}{_token(value)}")
    return "_".join(parts) or "run"


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


def expand_runs(spec: SweepSpec, base: dict[str, Any], site: SiteConfig, source: str) -> list[RunPlan]:
    """Every run of the study, its config tree resolved (base + overrides + axis values + run identity)."""
    plans: list[RunPlan] = []
    for values in axis_points(spec.axes):
        name = run_name(values)
        config = _deep_copy(base)
        for key, value in values.items():
            set_dotted(config, key, value)
        config["run"] = {"name": name, "sweep": spec.name}
        model_name = (config.get("model") or {}).get("name")
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
            )
        )
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{source}: two runs share the name {dup}; make the axis values distinct")
    return plans


def _deep_copy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deep_copy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_deep_copy(v) for v in tree]
    return tree


def resolve_config(plan: RunPlan, source: str) -> Any:
    """Strictly build the run's TrainConfig (catches bad values before submission)."""
    return from_dict(_train_config_cls(), plan.config, source=f"{source} run {plan.name}")
