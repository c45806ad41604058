"""Cooldown branches of a WSD run, the pure parts: config checks, branch steps and lengths, the branch LR,
branches.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scaling.config import ConfigError
from scaling.train import checkpoint as ckpt
from scaling.train.branches import branch_name, cooldown_factor, read_branches, record_branch
from scaling.train.config import cooldown_branch_steps, cooldown_length, load_train_config
from scaling.train.schedule import lr_factor

TINY = Path(__file__).resolve().parents[2] / "scaling/train/configs/tiny_cpu.yaml"
WSD = ["schedule.name=wsd", "budget.steps=100", "schedule.warmup_steps=10", "schedule.decay_fraction=0.2"]

BAD = [
    (["budget.steps=100", "schedule.cooldown_branches=[0.25]"], "needs schedule.name=wsd (is cosine)"),
    ([*WSD, "schedule.cooldown_branches=[0.5, 0.25]"], "strictly increasing"),
    ([*WSD, "schedule.cooldown_branches=[0.25, 0.25]"], "strictly increasing"),
    ([*WSD, "schedule.cooldown_branches=[0.0]"], "in (0, 1)"),
    ([*WSD, "schedule.cooldown_branches=[1.0]"], "in (0, 1)"),
    ([*WSD, "schedule.cooldown_branches=[0.05]"], "0.05 of budget.steps=100 is step 5, outside the stable"),
    ([*WSD, "schedule.cooldown_branches=[0.8]"], "is step 80, outside the stable phase (steps 10..79"),
    ([*WSD, "budget.steps=30", "schedule.cooldown_branches=[0.5, 0.51]"], "two branches on one step"),
    ([*WSD, "schedule.cooldown_branches=half"], "schedule.cooldown_branches"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_cooldown_branches_are_one_line_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_train_config(TINY, overrides)
    text = str(err.value)
    assert "schedule.cooldown_branches" in text and message in text and "\n" not in text


def test_branch_steps_and_lengths() -> None:
    cfg = load_train_config(TINY, [*WSD, "schedule.cooldown_branches=[0.1, 0.25, 0.79]"])
    assert cooldown_branch_steps(cfg) == [10, 25, 79]  # the stable phase is steps 10..79
    assert [cooldown_length(s, 0.2) for s in (10, 25, 79)] == [2, 5, 16]
    assert cooldown_length(300, 0.2) == 60 and cooldown_length(600, 0.2) == 120  # 0.2 x 300 is not 60.0000001
    assert load_train_config(TINY, WSD).schedule.cooldown_branches == []  # default: none
    assert cooldown_branch_steps(load_train_config(TINY)) == []


def test_branch_lr_is_the_wsd_cooldown_shape() -> None:
    # the main run's own cooldown (steps 80..99 of a 100-step wsd run) has the same values as a branch of 20
    main = [lr_factor(80 + j, warmup_steps=10, total_steps=100, min_ratio=0.1, name="wsd", decay_fraction=0.2)
            for j in range(20)]  # fmt: skip
    branch = [cooldown_factor(j, 20, 0.1) for j in range(20)]
    assert branch == pytest.approx(main)
    assert branch[0] == 1.0 and branch[5] == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(5 / 20)))
    assert all(a > b for a, b in zip(branch, branch[1:], strict=False)) and branch[-1] > 0.1


def test_branches_file_rows_replace_and_stay_ordered(tmp_path: Path) -> None:
    assert read_branches(tmp_path) == []
    record_branch(tmp_path, {"branch_from": 50, "val_loss": 2.0})
    record_branch(tmp_path, {"branch_from": 25, "val_loss": float("nan")})
    record_branch(tmp_path, {"branch_from": 50, "val_loss": 1.5})  # a redone branch replaces its row
    with (tmp_path / "branches.jsonl").open("a") as f:
        f.write('{"branch_from": 7')  # a torn line
    rows = read_branches(tmp_path)
    assert [(r["branch_from"], r["val_loss"]) for r in rows] == [(25, None), (50, 1.5)]  # strict JSON: null
    json.loads((tmp_path / "branches.jsonl").read_text().splitlines()[0])


def test_branch_weights_folder_is_never_a_resumable_checkpoint(tmp_path: Path) -> None:
    for name in (ckpt.step_name(10), branch_name(20)):
        (tmp_path / name).mkdir()
        (tmp_path / name / ckpt.MARKER).write_text("{}")
    assert branch_name(20) == "branch-00000020"
    assert ckpt.complete_checkpoints(tmp_path) == [(10, tmp_path / "step-00000010")]
    assert ckpt.resolve_checkpoint(tmp_path / branch_name(20)) == tmp_path / branch_name(20)  # still loadable
