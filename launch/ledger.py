"""The sweep ledger: runs/<sweep>/sweep.json, each run's status.json (launcher side) and the status table.

The trainer owns state transitions while it runs (running, preempted, completed, failed); the launcher writes
`submitted`, attempts and job ids, and merges rather than overwrites so neither side loses the other's fields
(`read_status` / `update_status`: scaling/rundir.py, the one reading of status.json every writer shares).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from scaling.atomic import read_json, write_json_atomic
from scaling.config import dump_yaml
from scaling.rundir import (
    CONFIG,
    METRICS,
    SHARED,
    SUBMITTED,
    SWEEP,
    now_iso,
    update_status,  # noqa: F401 - also this module's interface
)
from scaling.rundir import read_status as _read_own_status


def write_shared(run_dir: Path, source: str, target: Path) -> None:
    """<run>/shared.json: this sweep's run is `source` ('<sweep>/<run>'), trained in `target` (stored relative
    to `run_dir`, so a moved runs folder still resolves). A JSON record, not a symlink: some shared file
    systems refuse those."""
    rel = os.path.relpath(Path(target).absolute(), Path(run_dir).absolute())
    record = {"shared_from": source, "run_dir": rel}
    path = run_dir / SHARED
    if not (path.is_file() and read_json(path) == record):
        write_json_atomic(path, record)


def shared_target(run_dir: Path) -> Path:
    """The folder a run's results live in: the shared run's, when `run_dir` holds shared.json, else itself."""
    path = run_dir / SHARED
    if not path.is_file():
        return run_dir
    try:
        rel = read_json(path)["run_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir
    return Path(os.path.normpath(run_dir / rel))


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status.json (scaling/rundir.py's reading), or the shared run's where this one is shared."""
    return _read_own_status(shared_target(run_dir))


def record_submission(run_dir: Path, job_id: str, budget_steps: int) -> dict[str, Any]:
    """One more attempt of a run: state submitted, job id appended."""
    status = read_status(run_dir)
    return update_status(
        run_dir,
        state=SUBMITTED,
        attempts=int(status.get("attempts", 0)) + 1,
        job_ids=[*status.get("job_ids", []), str(job_id)],
        budget_steps=status.get("budget_steps", budget_steps),
        exit_code=None,
        reason=None,
    )


def write_run_config(run_dir: Path, config: dict[str, Any]) -> bool:
    """Write the resolved config.yaml; returns False (and leaves it) when an identical one is there."""
    path = run_dir / CONFIG
    text = dump_yaml(config)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    from scaling.atomic import write_text_atomic

    write_text_atomic(path, text)
    return True


def write_sweep(sweep_dir: Path, plan: dict[str, Any]) -> None:
    """sweep.json: the plan, merged with the job ids already recorded there."""
    path = sweep_dir / SWEEP
    old = read_json(path) if path.is_file() else {}
    jobs = old.get("jobs", {})
    jobs.update(plan.get("jobs", {}))
    write_json_atomic(path, {**old, **plan, "jobs": jobs, "updated": now_iso()})


def record_job(sweep_dir: Path, run: str, job_id: str) -> None:
    path = sweep_dir / SWEEP
    data = read_json(path) if path.is_file() else {}
    data.setdefault("jobs", {}).setdefault(run, []).append(str(job_id))
    write_json_atomic(path, data)


def sweep_folder(runs_dir: str | Path, sweep: str) -> Path:
    """A sweep named by `runs_of` / `depends_on`: a name under `runs_dir`, or a folder when it has a '/'."""
    return Path(sweep) if "/" in sweep else Path(runs_dir) / sweep


def sweep_run_names(sweep_dir: Path) -> list[str]:
    """The runs of a sweep: its sweep.json plan, else the folders holding a config.yaml (sorted)."""
    path = sweep_dir / SWEEP
    if path.is_file():
        try:
            runs = read_json(path).get("runs") or {}
        except (OSError, ValueError):
            runs = {}
        if runs:
            return list(runs)
    if not sweep_dir.is_dir():
        return []
    return sorted(p.name for p in sweep_dir.iterdir() if (p / CONFIG).is_file())


def sweep_run_dirs(runs_dir: str | Path, sweep: str) -> list[Path]:
    """The run folders of a sweep; a shared run's is the folder of the sweep that trains it."""
    folder = sweep_folder(runs_dir, sweep)
    return [shared_target(folder / name) for name in sweep_run_names(folder)]


def run_status(sweep_dir: Path, run: str) -> dict[str, Any]:
    """status.json with job ids and attempts completed from sweep.json (an entry point may rewrite it)."""
    status = read_status(sweep_dir / run)
    path = sweep_dir / SWEEP
    try:
        jobs = (read_json(path).get("jobs") or {}).get(run, []) if path.is_file() else []
    except (OSError, ValueError):
        jobs = []
    if not status.get("job_ids") and jobs:
        status["job_ids"] = list(jobs)
    status["attempts"] = max(int(status.get("attempts") or 0), len(jobs))
    return status


def last_metrics(run_dir: Path) -> dict[str, Any]:
    """Newest train step, its wall seconds, newest val_loss and val_loss_ratio (val loss / the objective's
    lookup baseline's) from metrics.jsonl (tolerates a torn line)."""
    out: dict[str, Any] = {"step": None, "wall_s": None, "val_loss": None, "val_loss_ratio": None}
    path = run_dir / METRICS
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("kind") == "val" and row.get("val_loss") is not None:
            out["val_loss"] = row["val_loss"]
            out["val_loss_ratio"] = row.get("val_loss_ratio")
        elif row.get("kind") == "train":
            out["step"], out["wall_s"] = row.get("step"), row.get("wall_s")
    return out


def eta_s(step: int | None, budget: int | None, wall_s: float | None) -> float | None:
    """Remaining seconds at the mean rate so far (wall_s covers this attempt's steps only roughly)."""
    if not step or not budget or not wall_s or step >= budget:
        return None
    return wall_s / step * (budget - step)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


def status_rows(
    sweep_dir: Path, run_names: list[str], budgets: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """One row per run from its status.json and metrics.jsonl; `budgets` fills runs not started yet."""
    rows = []
    for name in run_names:
        run_dir = shared_target(sweep_dir / name)
        status, metrics = run_status(sweep_dir, name), last_metrics(run_dir)
        step = status.get("last_step") or metrics["step"] or 0
        budget = status.get("budget_steps") or (budgets or {}).get(name)
        rows.append(
            {
                "run": name,
                "state": status.get("state", "pending"),
                "attempts": status.get("attempts", 0),
                "job": (status.get("job_ids") or ["-"])[-1],
                "step": step,
                "budget": budget,
                "val_loss": metrics["val_loss"],
                "ratio": metrics["val_loss_ratio"],
                "eta": None if status.get("state") == "completed" else eta_s(step, budget, metrics["wall_s"]),
                "reason": status.get("reason")
                or (f"shared: {run_dir}" if run_dir != sweep_dir / name else None),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ["run", "state", "attempts", "job", "step/budget", "val_loss", "ratio", "eta", "reason"]
    body = [
        [
            r["run"],
            r["state"],
            str(r["attempts"]),
            str(r["job"]),
            f"{r['step']}/{r['budget'] or '?'}",
            "-" if r["val_loss"] is None else f"{r['val_loss']:.4g}",
            "-" if r.get("ratio") is None else f"{r['ratio']:.3f}",
            _fmt_eta(r["eta"]),
            (r["reason"] or "")[:60],
        ]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip() for line in [head, *body]
    ]
    return "\n".join(lines)
