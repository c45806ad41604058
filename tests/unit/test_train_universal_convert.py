"""World-size changes: which checkpoints resume how (plan_resume) and the carried-over data cursor."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaling.atomic import write_json_atomic
from scaling.train import checkpoint as ckpt
from scaling.train.dist import DistEnv
from scaling.train.exits import RunFailed
from scaling.train.trainer import plan_resume
from scaling.train.universal import UNIVERSAL, has_universal, resize_rank_state


def make_checkpoint(root: Path, step: int, *, world_size: int, stage: int, universal: bool = False) -> Path:
    folder = root / ckpt.step_name(step)
    folder.mkdir(parents=True)
    if universal:
        (folder / UNIVERSAL / "zero").mkdir(parents=True)
    meta = {"step": step, "world_size": world_size, "zero_stage": stage, UNIVERSAL: universal}
    write_json_atomic(folder / ckpt.MARKER, meta)
    return folder


def dist(world_size: int) -> DistEnv:
    return DistEnv.from_environ({"RANK": "0", "WORLD_SIZE": str(world_size), "LOCAL_RANK": "0"})


def test_plan_resume_same_world_is_native(tmp_path: Path) -> None:
    assert plan_resume(tmp_path, dist(2), 1, tmp_path) == (None, False)
    folder = make_checkpoint(tmp_path, 4, world_size=2, stage=1)
    assert plan_resume(tmp_path, dist(2), 1, tmp_path) == (folder, False)


def test_plan_resume_changed_world_needs_universal(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 4, world_size=2, stage=2)
    with pytest.raises(RunFailed) as err:
        plan_resume(tmp_path, dist(1), 2, tmp_path / "run")
    text = str(err.value)
    assert "saved with world size 2" in text and "resumed with 1" in text
    assert (
        f"python -m scaling.train.universal {tmp_path / 'run'}" in text and "resume with 2 processes" in text
    )
    folder = make_checkpoint(tmp_path, 8, world_size=2, stage=2, universal=True)
    assert has_universal(folder) and plan_resume(tmp_path, dist(1), 2, tmp_path) == (folder, True)


def test_plan_resume_stage_0_needs_no_conversion_but_a_stage_change_does(tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path, 4, world_size=2, stage=0)
    assert plan_resume(tmp_path, dist(1), 0, tmp_path) == (folder, False)
    with pytest.raises(RunFailed, match="ZeRO stage 0"):
        plan_resume(tmp_path, dist(2), 1, tmp_path)


def test_universal_marker_without_folder_is_not_trusted(tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path, 4, world_size=2, stage=1)
    write_json_atomic(folder / ckpt.MARKER, {**ckpt.read_meta(folder), UNIVERSAL: True})
    assert not has_universal(folder)


def state(epoch: int, consumed: int, rank: int, world: int) -> dict:
    return {"data": {"epoch": epoch, "consumed": consumed, "seed": 0, "rank": rank, "world_size": world,
                     "fraction": 1.0, "split": "train"}, "rng": {"tag": rank}}  # fmt: skip


@pytest.mark.parametrize(
    ("saved", "world", "want"),
    [
        ([state(0, 25, 0, 2), state(0, 25, 1, 2)], 1, [(0, 50)]),  # half of each piece = half the epoch
        ([state(1, 10, 0, 1)], 2, [(1, 5), (1, 5)]),
        ([state(0, 49, 0, 2), state(1, 0, 1, 2)], 1, [(0, 99)]),  # one rank already wrapped
        ([state(0, 50, 0, 2), state(0, 50, 1, 2)], 4, [(1, 0)] * 4),  # a finished epoch starts the next
    ],
)
def test_resize_rank_state_carries_epoch_progress(saved: list, world: int, want: list) -> None:
    got = [resize_rank_state(saved, n_events=100, rank=r, world_size=world) for r in range(world)]
    assert [(g["data"]["epoch"], g["data"]["consumed"]) for g in got] == want
    assert all("rank" not in g["data"] and "world_size" not in g["data"] for g in got)
    assert [g["rng"]["tag"] for g in got] == [r % len(saved) for r in range(world)]
