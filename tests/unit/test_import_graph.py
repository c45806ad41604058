"""No two files of scaling/, launch/ or analysis/ import each other, directly or round a longer circle.

Every import counts: at module level, inside a function, under `if TYPE_CHECKING:`. `from pkg import name`
is an import of the submodule `pkg.name` when that is a module, of the module a package's lazy export
(scaling/lazy.py) names when it is one, else of the package's `__init__`. A package's lazy exports are not
imports of that package: `__init__` imports nothing of them until a name is used.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("scaling", "launch", "analysis")


def _modules() -> dict[str, Path]:
    """{dotted module name: file} of every source file of the packages (a package is its __init__)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _lazy_exports(modules: dict[str, Path]) -> dict[str, dict[str, str]]:
    """{package: {name: module}} of the packages whose __init__ uses lazy_exports (torch-free imports)."""
    from scaling import lazy

    for name, path in modules.items():
        if path.name == "__init__.py" and "lazy_exports" in path.read_text():
            importlib.import_module(name)
    return dict(lazy.EXPORTS)


def _imports(name: str, path: Path, modules: dict[str, Path], lazy: dict[str, dict[str, str]]) -> set[str]:
    """The project modules `name` (its file `path`) imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 more
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base not in modules:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif alias.name in lazy.get(base, {}):
                    found.add(lazy[base][alias.name])
                else:
                    found.add(base)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    lazy = _lazy_exports(modules)
    return {name: _imports(name, path, modules, lazy) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle [a, b, ..., a] of `graph`, or None (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_cycle_finder_names_a_circle_and_passes_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_resolve_to_submodules_and_lazy_exports() -> None:
    graph = _graph()
    # `from scaling.train import checkpoint as ckpt` (a submodule) and `from scaling.model import build_model`
    # (a lazy export of scaling.model.network)
    assert {"scaling.train.checkpoint", "scaling.model.network"} <= graph["scaling.train.trainer"]
    assert graph["scaling.model"] == {"scaling.lazy"}  # lazy exports are no edges of the package
    assert "scaling.train.trainer" in graph["scaling.train.entry"]  # a function-level import


def test_no_file_level_import_cycle() -> None:
    cycle = find_cycle(_graph())
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle))
