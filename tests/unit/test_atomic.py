"""Atomic writes leave the old file or the new one, never a half file or a stray temporary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scaling import atomic


def test_write_json_atomic_replaces_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "status.json"
    atomic.write_json_atomic(target, {"state": "running"})
    atomic.write_json_atomic(target, {"state": "completed", "step": 3})
    assert atomic.read_json(target) == {"state": "completed", "step": 3}
    assert sorted(p.name for p in target.parent.iterdir()) == ["status.json"]


def test_failed_write_keeps_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic.write_json_atomic(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic.write_json_atomic(target, {"bad": object()})
    assert atomic.read_json(target) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_read_json_names_the_corrupt_file(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    target.write_text('{"state": "runn')
    with pytest.raises(ValueError, match="status.json: not valid JSON"):
        atomic.read_json(target)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        assert atomic.current_umask() == umask
        atomic.write_json_atomic(tmp_path / "status.json", {"state": "running"})
        atomic.write_text_atomic(tmp_path / "config.yaml", "a: 1\n")
    finally:
        os.umask(old)
    # mkstemp alone leaves 0600: collaborators could not read a shared dataset or run folder
    assert (tmp_path / "status.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "config.yaml").stat().st_mode & 0o777 == mode


def test_json_files_are_strict_json_with_null_for_nan(tmp_path: Path) -> None:
    import numpy as np

    target = tmp_path / "metrics.json"
    obj = {"ari": float("nan"), "eff": [0.5, float("inf")], "per_bin": np.array([np.nan, 1.0], np.float32),
           "x": np.float32("nan"), "ok": 1.5}  # fmt: skip
    atomic.write_json_atomic(target, obj)
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in {text}"))
    assert strict == {"ari": None, "eff": [0.5, None], "per_bin": [None, 1.0], "x": None, "ok": 1.5}
