"""A run's exit codes (CONTRACTS.md) and the failure that means exit 4; torch-free, read by the trainer, the
run's entry point and the launcher alike.

0 completed; 1 crash; 2 config/usage error; 3 preempted (checkpointed on SIGUSR2/SIGTERM, status `preempted`,
requeue); 4 failed at run time (repeated non-finite steps: resubmitting would fail again).
"""

from __future__ import annotations

EXIT_OK, EXIT_CRASH, EXIT_CONFIG, EXIT_PREEMPTED, EXIT_FAILED = 0, 1, 2, 3, 4


class RunFailed(RuntimeError):
    """A deterministic failure at run time (exit 4): resubmitting would fail again."""


__all__ = ["EXIT_CONFIG", "EXIT_CRASH", "EXIT_FAILED", "EXIT_OK", "EXIT_PREEMPTED", "RunFailed"]
