"""Named registries: one pattern for everything chosen by name in a config or on a command line (objectives,
learning-rate schedules, scaling laws). Torch-free, so the launcher can check names without importing torch.

    >>> SCHEDULES = Registry("schedule")
    >>> @SCHEDULES.register("constant")
    ... def constant(step: int) -> float:
    ...     return 1.0
    >>> SCHEDULES.lookup("linear")   # ValueError: unknown schedule 'linear'; choose one of constant

An entry is registered once: a second definition under a taken name is an error (it would silently replace
the first). `unknown` words the lookup error for a config key or a CLI flag; it is formatted with `name`,
`choices` (the names in registration order, comma-separated) and `sorted` (the sorted list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")
UNKNOWN = "unknown {kind} {name!r}; choose one of {choices}"


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry, in registration order; read like a dict."""

    def __init__(self, kind: str, *, unknown: str = UNKNOWN) -> None:
        self.kind = kind
        self.unknown = unknown
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; a name already taken is a ValueError."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names are non-empty strings, got {name!r}")
        if name in self._entries:
            raise ValueError(
                f"{self.kind} {name!r} is already registered ({self._entries[name]!r}); choose another name"
            )
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering the decorated definition under `name`; returns it unchanged."""

        def add(entry: T) -> T:
            return self.add(name, entry)

        return add

    def remove(self, name: str) -> T:
        """Take an entry out again (a test's temporary definition)."""
        return self._entries.pop(name)

    def lookup(self, name: str) -> T:
        """The entry called `name`; an unknown name is a one-line ValueError listing the choices (`get` is
        the dict's, returning None)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(self.error(name)) from None

    def error(self, name: object) -> str:
        """The message for an unknown `name`."""
        return self.unknown.format(
            kind=self.kind, name=name, choices=", ".join(self._entries), sorted=sorted(self._entries)
        )

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        return tuple(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
