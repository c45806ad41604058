"""Iteration helpers shared by the data writers and the downstream feature extraction (no dependencies).

>>> list(batched(range(5), 2))
[[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items, the last one shorter when the items run out (lazily: a generator
    of events is read one batch at a time). itertools.batched from Python 3.12, as lists."""
    if size < 1:
        raise ValueError(f"batched: size must be >= 1, got {size}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
