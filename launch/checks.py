"""Guards before anything starts: a sweep's dependency is done, and a started run still has its config.

A run that has started (any state but a never-submitted `pending`) keeps the config.yaml it ran with: when the
spec now resolves it to something else, the launcher says which keys differ and leaves it alone, unless
`--rerun-changed` moves the old run folder aside (nothing is deleted) and starts the run afresh.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from launch.ledger import read_status, run_status, sweep_folder, sweep_run_names
from scaling.atomic import read_json, write_json_atomic
from scaling.config import ConfigError, from_dict, load_yaml, to_dict


def dependency_problem(runs_dir: str | Path, sweep: str) -> str | None:
    """None when every run of `sweep` is completed, else one line saying what is missing."""
    folder = sweep_folder(runs_dir, sweep)
    names = sweep_run_names(folder)
    if not names:
        return f"sweep {sweep} has no runs in {folder}; launch it first"
    waiting = [(n, read_status(folder / n).get("state", "pending")) for n in names]
    waiting = [(n, s) for n, s in waiting if s != "completed"]
    if not waiting:
        return None
    shown = ", ".join(f"{n} {s}" for n, s in waiting[:4]) + (", ..." if len(waiting) > 4 else "")
    return f"{len(waiting)} of {len(names)} runs of sweep {sweep} ({folder}) not completed: {shown}"


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config trees (a key present on one side only included)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            out += config_diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".") or "<config>"]


def changed_keys(run_dir: Path, new: dict[str, Any], cls: type) -> list[str]:
    """Keys where the run's config.yaml differs from `new` (both resolved by `cls`); [] if same or absent."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return []
    try:
        old = to_dict(from_dict(cls, load_yaml(path), source=str(path)))
    except (ConfigError, ValueError, OSError) as err:
        return [f"<config.yaml no longer valid: {err}>"]
    return config_diff(old, new)


def has_started(status: dict[str, Any]) -> bool:
    return status.get("state", "pending") != "pending" or bool(status.get("job_ids"))


def describe_change(state: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
    return f"{state} with a different config: {shown} differ{'s' if len(keys) == 1 else ''}"


def supersede(sweep_dir: Path, run: str) -> Path:
    """Move a run folder to <sweep>/.superseded/<run>-<UTC time>/ and drop its job ids from sweep.json."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    target = sweep_dir / ".superseded" / f"{run}-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    (sweep_dir / run).rename(target)
    path = sweep_dir / "sweep.json"
    if path.is_file():
        data = read_json(path)
        old_jobs = (data.get("jobs") or {}).pop(run, None)
        if old_jobs:
            data.setdefault("superseded", {})[target.name] = old_jobs
        write_json_atomic(path, data)
    return target


def started_status(sweep_dir: Path, run: str) -> dict[str, Any] | None:
    """The run's status when it has started, else None."""
    status = run_status(sweep_dir, run)
    return status if has_started(status) else None
