"""A run's exit codes (owned by scaling/rundir.py, the run-directory contract) and the failure that means
exit 4; torch-free, read by the trainer and the run's entry point.

0 completed; 1 crash; 2 config/usage error; 3 preempted (checkpointed on SIGUSR2/SIGTERM, status `preempted`,
requeue); 4 failed at run time (repeated non-finite steps: resubmitting would fail again).
"""

from __future__ import annotations

from scaling.rundir import EXIT_CONFIG, EXIT_CRASH, EXIT_FAILED, EXIT_OK, EXIT_PREEMPTED


class RunFailed(RuntimeError):
    """A deterministic failure at run time (exit 4): resubmitting would fail again."""


__all__ = ["EXIT_CONFIG", "EXIT_CRASH", "EXIT_FAILED", "EXIT_OK", "EXIT_PREEMPTED", "RunFailed"]
