"""Lazy package attributes (PEP 562): a package lists what it exports and where, and imports it on first use.

The launcher validates every run's config on the login node; the config classes live in torch-free modules,
and a package's `__init__` importing its torch modules eagerly would pull torch (~1.7 s) into every plan.

    __getattr__, __dir__ = lazy_exports(__name__, {"build_model": "scaling.model.network"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# {package: {name: module}} of every package using `lazy_exports` (read by the import-graph test, which counts
# `from package import name` as an import of the module that defines it, not of the package).
EXPORTS: dict[str, dict[str, str]] = {}


def lazy_exports(
    package: str, exports: dict[str, str], first: tuple[str, ...] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for `package`: `exports` maps a name to its module; the modules in `first`
    are imported before any torch-side name is resolved (e.g. objectives registering themselves)."""

    EXPORTS[package] = dict(exports)

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for other in first:
            importlib.import_module(other)
        return getattr(importlib.import_module(module), name)

    def dir_() -> list[str]:
        return sorted(exports)

    return getattr_, dir_
