"""Wall time per call of a benchmark's step, one definition for the CPU benchmarks and the GPU check."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], object] = lambda: None,
          warmup: bool = True) -> float:  # fmt: skip
    """Seconds per call of `fn` over `repeats` calls, after one warm-up call; `sync` (e.g.
    torch.cuda.synchronize) runs before the clock starts and before it stops, so queued GPU work counts."""
    if warmup:
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats
