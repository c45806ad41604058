"""The typed config loader: strict merge, type checks, overrides, and clear errors naming key and file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from scaling.config import (
    ConfigError,
    doc,
    dump_yaml,
    field_docs,
    from_dict,
    has_key,
    load_config,
    parse_override,
)


@dataclass(kw_only=True)
class OptimConfig:
    lr: float = doc("peak learning rate", default=2e-4)
    betas: tuple[float, float] = doc("Adam betas", default=(0.9, 0.95))

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"optimizer.lr must be positive, got {self.lr}")


@dataclass(kw_only=True)
class TreeConfig:
    name: str = doc("run name", default="run")
    steps: int = doc("optimizer steps", default=10)
    kind: Literal["a", "b"] = doc("a choice", default="a")
    out: Path | None = doc("output folder", default=None)
    optimizer: OptimConfig = field(default_factory=OptimConfig, metadata={"doc": "optimizer"})


def test_defaults_yaml_and_overrides_merge_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\noptimizer:\n  lr: 1.0e-3\n")
    cfg = load_config(TreeConfig, path, ["optimizer.lr=3e-4", "kind=b", "out=/tmp/x"])
    assert cfg.steps == 5
    assert cfg.optimizer.lr == pytest.approx(3e-4)
    assert cfg.optimizer.betas == (0.9, 0.95)
    assert cfg.kind == "b"
    assert cfg.out == Path("/tmp/x")


def test_unknown_key_names_dotted_path_and_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*optimizer\.lrr"):
        load_config(TreeConfig, path)


def test_wrong_type_and_bad_choice_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        from_dict(TreeConfig, {"steps": "many"})
    with pytest.raises(ConfigError, match="kind: 'c' is not one of"):
        from_dict(TreeConfig, {"kind": "c"})
    with pytest.raises(ConfigError, match="optimizer.lr must be positive"):
        from_dict(TreeConfig, {"optimizer": {"lr": -1}})


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("steps: 5\n  optimizer: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: malformed YAML at line \d+"):
        load_config(TreeConfig, path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(TreeConfig, tmp_path / "missing.yaml")


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = from_dict(TreeConfig, {"steps": 7, "optimizer": {"betas": [0.8, 0.9]}})
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_config(TreeConfig, path) == cfg


def test_field_docs_and_has_key() -> None:
    docs = field_docs(TreeConfig)
    assert docs["optimizer.lr"] == "peak learning rate"
    assert has_key(TreeConfig, "optimizer.betas")
    assert not has_key(TreeConfig, "optimizer.momentum")
    assert not has_key(TreeConfig, "steps.sub")


def test_parse_override_values() -> None:
    assert parse_override("a.b=3e-4") == ("a.b", 3e-4)
    assert parse_override("flag=true") == ("flag", True)
    assert parse_override("xs=[1, 2]") == ("xs", [1, 2])
    with pytest.raises(ConfigError):
        parse_override("novalue")
