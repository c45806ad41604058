"""A training run's entry point: `run` trains one rank and turns every way it can end into an exit code and a
status.json that says why.

    >>> exit_code = run(cfg, run_dir, DistEnv.from_environ())   # 0 done, 2 config, 3 preempted, 4 failed

Exit codes (scaling/rundir.py, re-exported by scaling/train/exits.py): 0 completed; 2 config/usage error;
3 preempted (checkpointed on SIGUSR2/SIGTERM, status `preempted`); 4 failed at run time (repeated
non-finite steps); 1 crash. The training itself (set-up, resume, the step loop) is `Trainer` in
scaling/train/trainer.py.
"""

from __future__ import annotations

import errno
import logging
import os
import traceback
from pathlib import Path

from scaling.config import ConfigError
from scaling.train import ledger
from scaling.train.config import TrainConfig
from scaling.train.dist import DistEnv
from scaling.train.exits import EXIT_CONFIG, EXIT_CRASH, EXIT_FAILED, EXIT_OK, EXIT_PREEMPTED, RunFailed

log = logging.getLogger(__name__)
__all__ = ["EXIT_CONFIG", "EXIT_CRASH", "EXIT_FAILED", "EXIT_OK", "EXIT_PREEMPTED", "RunFailed", "run"]


def run(cfg: TrainConfig, run_dir: str | Path, dist: DistEnv) -> int:
    """Train `cfg` into `run_dir` as rank `dist.rank`; returns the exit code (never raises)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        from scaling.train.trainer import Trainer

        trainer = Trainer(cfg, run_dir, dist)
        code = trainer.train()
    except ConfigError as err:
        return _fail(run_dir, dist, EXIT_CONFIG, str(err))
    except RunFailed as err:
        return _fail(run_dir, dist, EXIT_FAILED, str(err))
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.error("%s", traceback.format_exc())
            return _fail(run_dir, dist, EXIT_CRASH, f"{type(err).__name__}: {err}")
        # a full disk: one line; resubmitting after freeing space resumes from the last complete checkpoint
        where = f" writing {err.filename}" if err.filename else ""
        reason = (
            f"disk full{where} ({os.strerror(err.errno)}); free space or raise the quota, then resubmit "
            "(it resumes from the last complete checkpoint)"
        )
        return _fail(run_dir, dist, EXIT_CRASH, reason)
    except Exception as err:  # noqa: BLE001 - any crash is reported in status.json, then exit 1
        log.error("%s", traceback.format_exc())
        return _fail(run_dir, dist, EXIT_CRASH, f"{type(err).__name__}: {err}")
    try:
        trainer.close()
    except Exception:  # noqa: BLE001 - the run ended as `code` says; a failed release must not change that
        log.warning("releasing the engine or the process groups failed:\n%s", traceback.format_exc())
    return code


def _fail(run_dir: Path, dist: DistEnv, code: int, reason: str) -> int:
    log.error("%s", reason)
    if dist.is_main:
        try:
            ledger.update_status(run_dir, state="failed", reason=reason, exit_code=code)
        except OSError as err:  # a full disk: no room for a new status.json beside the old one
            if not ledger.overwrite_status(run_dir, state="failed", reason=reason, exit_code=code):
                log.error("%s/status.json still says running: cannot write it (%s)", run_dir, err)
    return code
