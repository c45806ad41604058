"""Axes of a sweep: validation, expansion into points, conditional overrides and run names.

    axes:
      grid: {model.name: [m1, m2]}           # Cartesian product
      zip: {optimizer.lr: [1e-3, 5e-4], budget.steps: [100, 200]}   # walked together
      seed: [0, 1]                           # a key outside grid/zip is one more grid axis
      backbone: {runs_of: model-scaling, plus: [adapter_only]}     # every run dir of that sweep + literals
    overrides:                               # a list: applied in order where `when` matches the run
      - when: {task: tracking}
        set: {adapter: {loss: ce}}           # nested merge (or dotted keys)
    run_name: "{task}-{backbone_name}-s{seed}"   # axis leaves; <leaf>_name: folder name of a runs_of value

Every function here is pure but `resolve_axes`, which lists the run folders of the sweeps named by `runs_of`.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

from scaling.config import ConfigError, field_types, has_key, renamed_key

AXIS_ALIASES = {"model": "model.name"}
AXIS_KINDS = ("grid", "zip")


def _err(path: Path | str, msg: str) -> ConfigError:
    return ConfigError(f"{path}: {msg}")


def axis_groups(axes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(grid, zip) as written: keys outside `grid`/`zip` are grid axes; keys not yet alias-resolved."""
    grid = {k: v for k, v in axes.items() if k not in AXIS_KINDS}
    grid.update(axes.get("grid") or {})
    return grid, dict(axes.get("zip") or {})


def _field_type(cls: type, dotted: str) -> Any:
    node: Any = cls
    for part in dotted.split("."):
        node = field_types(node)[part]
    return node


def _fix(cls: type, dotted: str, value: Any = None) -> str:
    """How to fix a key `cls` does not have: its new spelling when `cls` renamed it, else "fix its name"."""
    moved = renamed_key(cls, dotted, value)
    return f"'{moved[0]}' is now spelled '{moved[1]}'" if moved else "fix its name"


def flatten_set(cls: type, tree: dict[str, Any], where: str, path: Path | str) -> dict[str, Any]:
    """Dotted leaf keys of a nested `set:` mapping; descends into dataclass fields only (a dict is a leaf)."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = prefix + AXIS_ALIASES.get(str(key), str(key))
            if not has_key(cls, dotted):
                raise _err(path, f"{where}.{dotted}: not a {cls.__name__} key; {_fix(cls, dotted, value)}")
            if isinstance(value, dict) and dataclasses.is_dataclass(_field_type(cls, dotted)):
                walk(value, dotted + ".")
            else:
                out[dotted] = value

    walk(tree, "")
    return out


def validate_axes(axes: Any, cls: type, path: Path | str) -> None:
    """Empty or ragged axes, malformed runs_of entries and keys that are not `cls` keys are errors."""
    if not isinstance(axes, dict):
        raise _err(path, "axes must be a mapping (grid:, zip:, or key: [values])")
    for kind in AXIS_KINDS:
        if not isinstance(axes.get(kind) or {}, dict):
            raise _err(path, f"axes.{kind} must be a mapping of config key -> list of values")
    for kind, group in zip(AXIS_KINDS, axis_groups(axes), strict=True):
        for key, values in group.items():
            where = f"axes.{kind}.{key}" if key in (axes.get(kind) or {}) else f"axes.{key}"
            dotted = AXIS_ALIASES.get(key, key)
            if not has_key(cls, dotted):
                raise _err(path, f"{where}: '{dotted}' is not a {cls.__name__} key; {_fix(cls, dotted)}")
            if isinstance(values, dict) and kind == "grid":
                _validate_runs_of(values, where, path)
            elif not isinstance(values, list) or not values:
                raise _err(path, f"{where}: must be a non-empty list of values")
        lengths = {len(v) for v in group.values()}
        if kind == "zip" and len(lengths) > 1:
            raise _err(path, f"axes.zip: lists must have equal lengths, got {sorted(lengths)}")


def _validate_runs_of(values: dict[str, Any], where: str, path: Path | str) -> None:
    unknown = set(values) - {"runs_of", "plus"}
    if unknown:
        raise _err(path, f"{where}: unknown key '{sorted(unknown)[0]}' (use runs_of: SWEEP, plus: [values])")
    if not isinstance(values.get("runs_of"), str) or not values["runs_of"]:
        raise _err(path, f"{where}.runs_of: give the name of a sweep under the runs folder")
    if not isinstance(values.get("plus", []), list):
        raise _err(path, f"{where}.plus: must be a list of values")


def validate_overrides(
    overrides: Any, axes: dict[str, Any], cls: type, path: Path | str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The list form `[{when: {axis: value}, set: {...}}]` as (when, dotted set) pairs; keys checked."""
    if isinstance(overrides, dict):
        for key in overrides:
            dotted = AXIS_ALIASES.get(key, key)
            if not has_key(cls, dotted):
                raise _err(
                    path, f"overrides.{key}: not a {cls.__name__} key; {_fix(cls, dotted, overrides[key])}"
                )
        return []
    grid, zipped = axis_groups(axes)
    axis_keys = {AXIS_ALIASES.get(k, k) for k in [*grid, *zipped]}
    out = []
    for i, item in enumerate(overrides):
        where = f"overrides[{i}]"
        if not isinstance(item, dict) or set(item) - {"when", "set"} or not isinstance(item.get("set"), dict):
            raise _err(path, f"{where}: must be {{when: {{axis: value}}, set: {{key: value}}}}")
        when = {AXIS_ALIASES.get(k, k): v for k, v in (item.get("when") or {}).items()}
        for key in when:
            if key not in axis_keys:
                raise _err(
                    path, f"{where}.when.{key}: not an axis of this sweep ({', '.join(sorted(axis_keys))})"
                )
        for key, value in when.items():
            literal = {**grid, **zipped}.get(key) or {**grid, **zipped}.get(_alias_of(key))
            if isinstance(literal, list) and value not in literal:
                raise _err(path, f"{where}.when.{key}: {value!r} is not a value of that axis {literal}")
        out.append((when, flatten_set(cls, item["set"], f"{where}.set", path)))
    return out


def _alias_of(dotted: str) -> str:
    return next((k for k, v in AXIS_ALIASES.items() if v == dotted), dotted)


def resolve_axes(
    axes: dict[str, Any], runs_dir: str, list_runs: Any, path: Path | str = "<spec>"
) -> tuple[dict[str, Any], dict[str, dict[Any, str]]]:
    """Axes with `runs_of` entries replaced by run folders (`list_runs(runs_dir, sweep)`), and their labels.

    Returns ({"grid": {...}, "zip": {...}} of plain lists, {axis key: {value: run folder name}}).
    """
    grid, zipped = axis_groups(axes)
    labels: dict[str, dict[Any, str]] = {}
    plain_grid: dict[str, list[Any]] = {}
    for key, values in grid.items():
        dotted = AXIS_ALIASES.get(key, key)
        if isinstance(values, dict):
            sweep = values["runs_of"]
            runs = [str(p) for p in list_runs(runs_dir, sweep)]
            plus = list(values.get("plus") or [])
            labels[dotted] = {**{r: Path(r).name for r in runs}, **{p: str(p) for p in plus}}
            values = runs + plus
            if not values:
                raise _err(
                    path, f"axes.{key}.runs_of: sweep {sweep} has no runs under {runs_dir}; launch it first"
                )
        plain_grid[key] = values
    return {"grid": plain_grid, "zip": zipped}, labels


def axis_points(axes: dict[str, Any]) -> list[dict[str, Any]]:
    """Grid product x zipped tuples, in spec order; keys resolved through AXIS_ALIASES."""
    grid_raw, zip_raw = axis_groups(axes)
    grid = {AXIS_ALIASES.get(k, k): v for k, v in grid_raw.items()}
    zipped = {AXIS_ALIASES.get(k, k): v for k, v in zip_raw.items()}
    grid_points = [dict(zip(grid, combo, strict=False)) for combo in itertools.product(*grid.values())]
    n_zip = len(next(iter(zipped.values()))) if zipped else 1
    zip_points = [{k: v[i] for k, v in zipped.items()} for i in range(n_zip)]
    return [{**g, **z} for g in grid_points for z in zip_points]


def matches(when: dict[str, Any], values: dict[str, Any], labels: dict[str, dict[Any, str]]) -> bool:
    """A `when` holds when every named axis has that value (a runs_of axis also matches by folder name)."""
    for key, wanted in when.items():
        value = values.get(key)
        if value != wanted and labels.get(key, {}).get(value) != str(wanted):
            return False
    return True


def _token(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text)


def run_name(values: dict[str, Any]) -> str:
    """A readable unique name: model names as-is, other axes as <leaf><value>, joined by '_'."""
    leaves = [k.rsplit(".", 1)[-1] for k in values]
    parts = []
    for key, value in values.items():
        leaf = key.rsplit(".", 1)[-1]
        label = key.replace(".", "-") if leaves.count(leaf) > 1 else leaf
        parts.append(_token(value) if key == "model.name" else f"{label}{_token(value)}")
    return "_".join(parts) or "run"


def format_run_name(
    fmt: str, values: dict[str, Any], labels: dict[str, dict[Any, str]], path: Path | str
) -> str:
    """`fmt` filled with each axis by leaf name and by dotted name with '_'; `<leaf>_name` is the folder name
    of a runs_of value or of a path value (else the value). Characters unsafe in a folder name become '-'."""
    fields: dict[str, Any] = {}
    for key, value in values.items():
        leaf = key.rsplit(".", 1)[-1]
        fallback = _token(Path(value).name) if isinstance(value, str) else _token(value)
        name = labels.get(key, {}).get(value, fallback)
        fields.update({leaf: value, key.replace(".", "_"): value, f"{leaf}_name": name})
    try:
        text = fmt.format(**fields)
    except KeyError as err:
        raise _err(
            path, f"run_name: {{{err.args[0]}}} is not an axis (have: {', '.join(sorted(fields))})"
        ) from None
    except (ValueError, IndexError) as err:
        raise _err(path, f"run_name: {fmt!r} is not a valid format string ({err})") from None
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", text) or "run"
