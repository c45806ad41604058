"""The typed config loader: strict merge, type checks, overrides, and clear errors naming key and file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from scaling.config import (
    ConfigError,
    check_order,
    check_positive,
    check_range,
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


@dataclass(kw_only=True)
class RangesConfig:
    width: int = doc("model width", default=64)
    dropout: float = doc("dropout probability", default=0.0)
    power: float = doc("Tsallis power", default=7.0)
    lo: int = doc("fewest", default=2)
    hi: int = doc("most", default=5)


@pytest.mark.parametrize(
    ("changes", "call", "message"),
    [
        ({"width": 0}, lambda c: check_positive(c, "power", "width"), r"^width: must be > 0, got 0$"),
        (
            {"width": -1},
            lambda c: check_positive(c, "width", allow_zero=True),
            r"^width: must be >= 0, got -1$",
        ),
        (
            {"dropout": float("nan")},
            lambda c: check_range(c, "dropout", low=0, high=1, where="model"),
            r"^model\.dropout: must be in \[0, 1\], got nan$",
        ),
        (
            {"dropout": 1.0},
            lambda c: check_range(c, "dropout", low=0, high=1, high_open=True),
            r"^dropout: must be in \[0, 1\), got 1\.0$",
        ),
        (
            {"power": 3.0},
            lambda c: check_range(c, "power", low=3, low_open=True, why="finite mean"),
            r"^power: must be > 3 \(finite mean\), got 3\.0$",
        ),
        ({"width": 65}, lambda c: check_range(c, "width", high=64), r"^width: must be <= 64, got 65$"),
        ({"width": "wide"}, lambda c: check_positive(c, "width"), r"^width: must be > 0, got wide$"),
        ({"lo": 6}, lambda c: check_order(c, "lo", "hi"), r"^lo: must be at most hi, got 6 and 5$"),
        (
            {"lo": 5},
            lambda c: check_order(c, "lo", "hi", strict=True, where="m"),
            r"^m\.lo: must be below m\.hi, got 5 and 5$",
        ),
    ],
)
def test_field_checks_name_the_field_and_the_rule(changes: dict, call, message: str) -> None:
    good = RangesConfig()
    call(good)  # the defaults pass every rule
    with pytest.raises(ValueError, match=message):
        call(RangesConfig(**changes))


def test_field_checks_pass_on_the_bounds_and_stop_at_the_first_bad_field() -> None:
    cfg = RangesConfig(width=0, dropout=1.0, lo=5)
    check_positive(cfg, "width", allow_zero=True)
    check_range(cfg, "dropout", "width", low=0, high=1)
    check_order(cfg, "lo", "hi")
    with pytest.raises(ValueError, match="^width: must be > 0"):
        check_positive(RangesConfig(width=0, power=-1.0), "width", "power")


def test_field_checks_inside_post_init_become_config_errors_naming_the_file(tmp_path: Path) -> None:
    @dataclass(kw_only=True)
    class CheckedConfig:
        steps: int = doc("optimizer steps", default=10)

        def __post_init__(self) -> None:
            check_positive(self, "steps")

    path = tmp_path / "run.yaml"
    path.write_text("steps: 0\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: CheckedConfig: steps: must be > 0, got 0"):
        load_config(CheckedConfig, path)
