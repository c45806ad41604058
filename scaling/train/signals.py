"""Preemption signals: the handler only records that a signal came; the loop acts at a step boundary.

SIGUSR2 (Slurm's warning before preemption or the time limit, sent with --signal) and SIGTERM (requeue,
scancel) both ask the run to finish its step, checkpoint, write status `preempted` and exit 3. A second
signal while the checkpoint is being written only sets the flag again: the save goes on untouched.
Once the checkpoint is written, `ignore_further()` makes later signals harmless until the process exits:
Python puts the default handlers back while it shuts down, and a SIGTERM landing then would turn exit 3
into a kill that a launcher reads as a crash.
"""

from __future__ import annotations

import signal
from types import FrameType

PREEMPT_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class StopFlag:
    """Set by SIGUSR2 / SIGTERM once `install()`ed; `restore()` puts the previous handlers back."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self.count += 1

    def install(self) -> StopFlag:
        for sig in PREEMPT_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def ignore_further(self) -> None:
        """Ignore the preemption signals from now on: SIG_IGN survives interpreter shutdown, a handler not."""
        for sig in PREEMPT_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
