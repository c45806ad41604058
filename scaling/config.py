"""Typed configuration: keyword-only dataclasses loaded from YAML with `a.b=c` overrides.

Precedence is defaults < YAML file < command-line overrides. The merge is strict: a key that is not a field
is an error naming the dotted path and the file, and so is a value of the wrong type; a key that a class has
renamed (its `RENAMED_KEYS`, old dotted key -> new) is refused with the new spelling. Each component owns its
own `...Config` dataclass (a one-line doc per field in `metadata={"doc": ...}`); a tree of them is
just a dataclass whose fields are dataclasses.

    >>> cfg = load_config(TrainConfig, "run.yaml", ["optimizer.lr=3e-4", "model.width=128"])
    >>> to_dict(cfg)   # plain dict, ready for yaml.safe_dump

Derived values are functions of a config, never mutations of it. `__post_init__` validates with the shared
checks, so every config words its errors alike ("nodes: must be >= 1, got 0"):

    >>> check_positive(self, "lr", "hours")                  # > 0 (allow_zero=True: >= 0)
    >>> check_range(self, "dropout", low=0, high=1)         # in [0, 1]; low_open/high_open, why="..."
    >>> check_order(self, "multiplicity_min", "multiplicity_max")
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user (names the key and the file)."""


def doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field carrying its one-line documentation: `lr: float = doc("peak LR", default=2e-4)`."""
    return dataclasses.field(metadata={"doc": text}, **kwargs)


def check_range(
    obj: Any,
    *names: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    why: str = "",
    where: str = "",
) -> None:
    """Raise `ValueError("<where.>name: must be <rule>, got <value>")` for the first field of `obj` outside
    the interval (NaN is always outside). `low_open`/`high_open` exclude the bound; `why` is appended to the
    rule in parentheses; `where` (e.g. "resources") prefixes the field as a dotted path.

        >>> check_range(cfg, "hit_efficiency", "conversion_fraction", low=0, high=1)
        >>> check_range(cfg, "tsallis_n", low=3, low_open=True, why="finite mean pT")
    """
    rule = _range_rule(low, high, low_open, high_open) + (f" ({why})" if why else "")
    for name in names:
        value = getattr(obj, name)
        try:
            inside = (low is None or (value > low if low_open else value >= low)) and (
                high is None or (value < high if high_open else value <= high)
            )
        except TypeError:
            inside = False  # a string or None where a number belongs: same message, the value shows why
        if not inside:
            raise ValueError(f"{where + '.' if where else ''}{name}: must be {rule}, got {value}")


def check_positive(obj: Any, *names: str, allow_zero: bool = False, where: str = "") -> None:
    """`check_range` for fields that must be > 0 (or >= 0 with `allow_zero`): "name: must be > 0, got -1"."""
    check_range(obj, *names, low=0, low_open=not allow_zero, where=where)


def check_order(obj: Any, lower: str, upper: str, *, strict: bool = False, where: str = "") -> None:
    """Raise `ValueError` naming both fields unless `obj.lower <= obj.upper` (`<` with `strict`)."""
    a, b = getattr(obj, lower), getattr(obj, upper)
    if not (a < b if strict else a <= b):
        prefix = f"{where}." if where else ""
        rule = "below" if strict else "at most"
        raise ValueError(f"{prefix}{lower}: must be {rule} {prefix}{upper}, got {a} and {b}")


def _range_rule(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The interval as the error message states it: "> 0", ">= 1", "<= 5", "in [0, 1]", "in (0, 1]"."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    raise TypeError("check_range: give low, high or both")


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """`typing.get_type_hints` of a config class, once per class: it evaluates every string annotation again
    on each call, and a dry-run builds hundreds of configs."""
    return get_type_hints(cls)


# libyaml's loader where PyYAML was built with it: ~10x the pure-Python one (a dry-run reads every spec)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a syntax error or a non-mapping top level is a `ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value` into ("a.b", value), the value parsed as YAML (so 3e-4, true, [1,2] work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        # YAML 1.1 reads "3e-4" as a string; a number is what anyone typing it means.
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            pass
    return key, value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `tree["a"]["b"] = value` for key "a.b", creating intermediate mappings."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def from_dict(cls: type[T], data: dict[str, Any] | None, *, source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping, strictly: unknown keys and wrong types raise `ConfigError`."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping")
    hints = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        moved = renamed_key(cls, unknown[0], data[unknown[0]])
        if moved:
            raise ConfigError(f"{source}: '{prefix}{moved[0]}' is now spelled '{prefix}{moved[1]}'")
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known here: {known})")
    kwargs = {name: _coerce(hints[name], value, source, f"{prefix}{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {err}") from None
    return obj


def renamed_key(cls: type, dotted: str, value: Any = None) -> tuple[str, str] | None:
    """(old, new) dotted keys when `dotted` (or, for a mapping `value`, one of its keys) is a spelling that
    `cls` no longer reads, from its `RENAMED_KEYS` (old -> new, relative to `cls`); else None.

        >>> renamed_key(DownstreamConfig, "optim", {"steps": 300})    # ("optim.steps", "budget.steps")
    """
    renamed = getattr(cls, "RENAMED_KEYS", None) or {}
    if dotted in renamed:
        return dotted, renamed[dotted]
    if isinstance(value, dict):
        for key, sub in value.items():  # a group spelled the old way: name the first of its keys
            moved = renamed_key(cls, f"{dotted}.{key}", sub)
            if moved:
                return moved
    return None


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    base: dict[str, Any] | None = None,
) -> T:
    """Defaults < `base` mapping < YAML file < overrides, merged strictly into `cls`."""
    tree: dict[str, Any] = _deep_merge({}, base or {})
    source = "<defaults>"
    if path is not None:
        tree = _deep_merge(tree, load_yaml(path))
        source = str(path)
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(tree, key, value)
    if overrides:
        source = f"{source} (+ command-line overrides)"
    return from_dict(cls, tree, source=source)


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (dataclasses to dicts, tuples to lists, paths to strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj: Any) -> str:
    """YAML text of a config, keys in field order."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def field_docs(cls: type) -> dict[str, str]:
    """Dotted key -> one-line doc for every field of a config tree (used for CLI help)."""
    out: dict[str, str] = {}
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        out[f.name] = f.metadata.get("doc", "")
        sub = hints[f.name]
        if dataclasses.is_dataclass(sub):
            out.update({f"{f.name}.{k}": v for k, v in field_docs(sub).items()})
    return out


def has_key(cls: type, dotted: str) -> bool:
    """Whether `dotted` names a field (at any depth) of config tree `cls`."""
    node: Any = cls
    for part in dotted.split("."):
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return False
        hints = field_types(node)
        if part not in hints:
            return False
        node = hints[part]
    return True


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    """Check/convert `value` to annotation `tp`; raise `ConfigError` naming `key` on mismatch."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{source}: {key}: invalid value {value!r}")
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{source}: {key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        return from_dict(tp, value, source=source, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: {key}: expected {len(args)} values, got {len(value)}")
            pairs = enumerate(zip(args, value, strict=True))
            return tuple(_coerce(a, v, source, f"{key}[{i}]") for i, (a, v) in pairs)
        item = args[0] if args else Any
        items = [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{source}: {key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{source}: {key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{source}: {key}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{source}: {key}: expected a path, got {value!r}")
    return value
