"""Model-config contradictions are config errors at load time (exit 2, one line naming key, file and fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaling.config import ConfigError
from scaling.train.__main__ import main
from scaling.train.config import load_train_config

TINY = Path(__file__).resolve().parents[2] / "scaling/train/configs/tiny_cpu.yaml"

BAD_MODELS = [
    (["model.name=m3", "model.width=128"], "model.width=128", "model.name=custom"),
    (["model.name=custom", "model.width=100"], "model.headdim=64", "change model.width"),
    (["model.name=custom", "model.width=64", "model.headdim=48"], "model.headdim=48", "change model.width"),
    (["model.name=custom", "model.width=64", "model.ngroups=3"], "model.ngroups=3", "change model.ngroups"),
    (["model.name=tiny", "model.headdim=8"], "model.headdim=8", "model.name=custom"),
    (["model.name=custom"], "model.width", "model.name=custom"),
    (["model.name=m9"], "model.name='m9'", "use one of"),
]


@pytest.mark.parametrize(
    ("overrides", "key", "fix"), BAD_MODELS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_model_contradictions_fail_at_load(overrides: list[str], key: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_train_config(TINY, overrides)
    text = str(err.value)
    assert key in text and fix in text and str(TINY) in text and "\n" not in text


def test_cli_model_mismatch_exits_2_before_any_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    assert main([str(TINY), "model.name=m3", "model.width=128", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.width=128" in err and str(TINY) in err and "\n" not in err
    status = json.loads((run_dir / "status.json").read_text())
    assert status["exit_code"] == 2 and "model.width=128" in status["reason"]
    assert not (run_dir / "config.yaml").exists()  # nothing was started


def test_valid_custom_and_named_models_still_load() -> None:
    cfg = load_train_config(
        TINY, ["model.name=custom", "model.width=48", "model.headdim=32", "model.expand=2"]
    )
    assert cfg.model.width == 48
    assert load_train_config(TINY, ["model.name=m3", "model.width=256"]).model.name == "m3"


def test_a_named_model_is_resolved_once_at_load() -> None:
    import yaml

    from scaling.config import dump_yaml, from_dict, load_yaml
    from scaling.model import resolve_model_config

    cfg = load_train_config(TINY, ["model.name=m3"])
    assert (cfg.model.width, cfg.model.n_heads, cfg.model.d_inner) == (256, 8, 512)
    assert resolve_model_config(cfg.model) == cfg.model  # idempotent: nothing left to fill
    tiny = load_train_config(TINY, ["model.name=tiny"]).model
    assert (tiny.width, tiny.n_layers, tiny.d_state, tiny.headdim) == (32, 2, 16, 16)
    # the config a run writes names the width, and loads back to the same config
    text = dump_yaml(cfg)
    assert "width: 256" in text
    assert from_dict(type(cfg), yaml.safe_load(text)) == cfg
    assert load_yaml(TINY)["model"].get("width", 0) == 0  # the file itself leaves it to the name


def test_tensorboard_is_off_by_default_and_a_bool() -> None:
    assert load_train_config(TINY).logging.tensorboard is False
    assert load_train_config(TINY, ["logging.tensorboard=true"]).logging.tensorboard is True
    with pytest.raises(ConfigError, match="logging.tensorboard"):
        load_train_config(TINY, ["logging.tensorboard=[1]"])


def test_board_scalars_mirror_metric_rows() -> None:
    from scaling.train.board import row_scalars

    train = {"kind": "train", "step": 3, "loss": 1.5, "grad_norm": None, "tokens_per_s": 10,
             "mfu": None, "lr": {"hidden": 1e-3, "output": 2e-4}, "events": 4}  # fmt: skip
    assert row_scalars(train) == {"train/loss": 1.5, "train/tokens_per_s": 10.0,
                                  "lr/hidden": 1e-3, "lr/output": 2e-4}  # fmt: skip
    assert row_scalars({"kind": "val", "step": 3, "val_loss": 0.5, "tokens": 9}) == {"val/loss": 0.5}
    assert row_scalars({"kind": "train", "step": 1, "loss": float("nan")}) == {}
