"""The run-directory contract: file names, status states, exit codes and the one merge of status.json.

Three programs write a run's status.json: the launcher (`submitted`, attempts, job ids), the trainer and
the downstream entry point (`running`, `preempted`, `completed`, `failed`, exit code, reason). Each merges
its fields into what is there through `update_status`, so neither side loses the other's. Analysis reads the
same names. This module imports nothing heavy (no torch, no numpy): the launcher plans on a login node.

    >>> update_status(run_dir, state="failed", exit_code=EXIT_CONFIG, reason="model.width: must be > 0")
    >>> is_deterministic(EXIT_CONFIG)      # True: resubmitting would fail the same way

One answer for every writer:
- a missing status.json reads as `new_status()`: pending, attempts 0, no job ids, no reason;
- an unreadable one (cut off, not JSON, not a JSON object) reads the same, with the reason
  "unreadable status.json", and the next merge rewrites it whole: a torn file never stops a run or a sweep;
- attempts counts the launcher's submissions (`launch.ledger.record_submission`), so it defaults to 0: a run
  started by hand was never submitted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from scaling.atomic import finite_json, read_json, write_json_atomic

# file names inside runs/<sweep>/<run>/ (README "The run directory")
CONFIG = "config.yaml"
STATUS = "status.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
PROBE = "probe.json"
LAUNCH_LOG = "launch.log"
SWEEP = "sweep.json"  # beside the run directories: runs/<sweep>/sweep.json
SHARED = "shared.json"  # a run another sweep trains (spec key `shared`): {"shared_from", "run_dir"}

# status.json `state`
PENDING, SUBMITTED, RUNNING, PREEMPTED, COMPLETED, FAILED = (
    "pending",
    "submitted",
    "running",
    "preempted",
    "completed",
    "failed",
)
STATES = (PENDING, SUBMITTED, RUNNING, PREEMPTED, COMPLETED, FAILED)
ACTIVE_STATES = (SUBMITTED, RUNNING)  # a job holds (or waits for) an allocation
LIVE_STATES = (SUBMITTED, RUNNING, PREEMPTED)  # a job may still come back (a preempted one requeues)
FINAL_STATES = (COMPLETED, FAILED)

# exit codes of `python -m scaling.train` and `python -m analysis.downstream`
EXIT_OK = 0  # completed
EXIT_CRASH = 1  # anything unforeseen: worth another attempt
EXIT_CONFIG = 2  # configuration or input error
EXIT_PREEMPTED = 3  # checkpointed on a signal, status `preempted`: requeue
EXIT_FAILED = 4  # failed at run time (repeated non-finite steps)
DETERMINISTIC_EXIT_CODES = (EXIT_CONFIG, EXIT_FAILED)  # the same input fails again: never resubmitted
# after these the entry point has written status.json itself (state and reason): a launcher keeps them
SELF_REPORTED_EXIT_CODES = (EXIT_CONFIG, EXIT_PREEMPTED, EXIT_FAILED)

UNREADABLE_REASON = "unreadable status.json"


def is_deterministic(code: int | None) -> bool:
    """True for an exit code that resubmitting cannot change (config error, failure at run time)."""
    return code in DETERMINISTIC_EXIT_CODES


def is_deterministic_failure(status: dict[str, Any]) -> bool:
    """A status.json that says failed with a deterministic exit code."""
    return status.get("state") == FAILED and is_deterministic(status.get("exit_code"))


def now_iso() -> str:
    """The current UTC time to the second, ISO 8601 (status.json `updated`, run info `time`)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def new_status(reason: str | None = None) -> dict[str, Any]:
    """The status of a run nothing has written yet."""
    return {"state": PENDING, "attempts": 0, "job_ids": [], "reason": reason}


def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """status.json over `new_status()`'s defaults; a missing or unreadable file is `new_status()` (the
    latter with reason "unreadable status.json"). Never raises for the file's content."""
    path = Path(run_dir) / STATUS
    if not path.is_file():
        return new_status()
    try:
        status = read_json(path)
    except (OSError, ValueError):
        return new_status(UNREADABLE_REASON)
    if not isinstance(status, dict):
        return new_status(UNREADABLE_REASON)
    return {**new_status(), **status}


def update_status(run_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json (`read_status`'s reading), stamp `updated` and write it atomically
    with the user's umask; returns what was written. An OSError of the write (a full disk) propagates."""
    status = {**read_status(run_dir), **fields, "updated": now_iso()}
    write_json_atomic(Path(run_dir) / STATUS, status)
    return status


def overwrite_status(run_dir: str | os.PathLike[str], **fields: Any) -> bool:
    """Last resort on a full disk, where an atomic write has no room for its new file: merge as
    `update_status` does but rewrite status.json in place, inside the blocks it already holds (a torn write
    is possible, a stale `running` is worse). Returns False when even that fails (or there is no file)."""
    path = Path(run_dir) / STATUS
    try:
        status = {**read_status(run_dir), **fields, "updated": now_iso()}
        with path.open("r+b") as handle:
            handle.write(json.dumps(finite_json(status), indent=2).encode("utf-8") + b"\n")
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, ValueError):
        return False
    return True
