"""Atomic file writes: write beside the target, fsync, then `os.replace`.

Every small file of a run directory (status, summary, manifests, pointers) goes through here so that a job
killed at any instant leaves either the old file or the new one, never half of one. Files get the mode a
plain `open()` would give them (0666 less the umask: 0644 under umask 022), so collaborators sharing a
project folder can read datasets and results; `tempfile.mkstemp` alone would leave them 0600.

    >>> write_json_atomic(run_dir / "status.json", {"state": "running"})
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask must set it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Write `obj` as strict JSON atomically (keys kept in insertion order, trailing newline).

    JSON has no NaN or infinity: such floats (an undefined metric, an empty bin) are written as null, so jq,
    browsers and other strict readers accept every file the toolkit writes."""
    text = json.dumps(finite_json(obj), indent=indent, default=_json_default, allow_nan=False)
    write_text_atomic(path, text + "\n")


def write_json_if_changed(path: str | os.PathLike[str], obj: Any) -> bool:
    """`write_json_atomic` (compact) unless the file already holds exactly that text; True if written.

    For statistics a run refits identically at every start (a resumed job must not need free disk space,
    or a file-size allowance, to rewrite what is already there)."""
    text = json.dumps(finite_json(obj), default=_json_default, allow_nan=False) + "\n"
    try:
        if Path(path).read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(path, text)
    return True


def finite_json(obj: Any) -> Any:
    """`obj` with non-finite floats replaced by None, through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, raising `ValueError` that names the file when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}); delete or restore the file"
        ) from None


def _json_default(obj: Any) -> Any:
    """Serialise numpy scalars/arrays and paths that the standard encoder refuses."""
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return finite_json(tolist())
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")
