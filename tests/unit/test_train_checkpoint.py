"""Checkpoint folder protocol (partial saves ignored, pruning, pointer) and the preemption flag."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaling.train import checkpoint as ckpt
from scaling.train.config import load_train_config
from scaling.train.signals import StopFlag

TINY = Path(__file__).resolve().parents[2] / "scaling/train/configs/tiny_cpu.yaml"


def _save(root: Path, step: int) -> Path:
    tmp = root / f"{ckpt.TMP_PREFIX}{ckpt.step_name(step)}"
    tmp.mkdir(parents=True)
    ckpt.write_rank_state(tmp, 0, {"data": {"consumed": step}})
    ckpt.finish(tmp, root / ckpt.step_name(step), meta={"step": step}, cfg=load_train_config(TINY))
    return root / ckpt.step_name(step)


def test_resume_takes_newest_complete_and_ignores_partial(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    _save(root, 4)
    _save(root, 8)
    (root / "step-00000012").mkdir()  # torn: no marker
    (root / ".tmp-step-00000016").mkdir()  # killed mid-write
    assert ckpt.find_resume(root) == root / "step-00000008"
    assert (root / "latest").read_text().strip() == "step-00000008"
    assert ckpt.read_rank_state(root / "step-00000008", 0)["data"]["consumed"] == 8
    ckpt.remove_partial(root)
    assert not (root / ".tmp-step-00000016").exists()
    with pytest.raises(ValueError, match="world size"):
        ckpt.read_rank_state(root / "step-00000008", 1)


def test_prune_keeps_last_k_and_budget_steps(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    for step in (2, 4, 5, 6, 8, 10):
        _save(root, step)
    ckpt.prune(root, keep_last=2, keep_steps={5, 10})
    assert [s for s, _ in ckpt.complete_checkpoints(root)] == [5, 6, 8, 10]


def test_resolve_checkpoint_from_run_dir_or_step(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    _save(root, 3)
    _save(root, 7)
    assert ckpt.resolve_checkpoint(tmp_path) == root / "step-00000007"
    assert ckpt.resolve_checkpoint(tmp_path, step=3) == root / "step-00000003"
    with pytest.raises(FileNotFoundError, match="step 5"):
        ckpt.resolve_checkpoint(root, step=5)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "empty")


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGTERM])
def test_signal_only_sets_the_flag(sig: int) -> None:
    flag = StopFlag().install()
    try:
        assert not flag.requested
        os.kill(os.getpid(), sig)
        os.kill(os.getpid(), sig)  # a second signal is harmless
        assert flag.requested and flag.signum == sig and flag.count == 2
    finally:
        flag.restore()
    assert signal.getsignal(sig) is not flag._handle


CHILD = """
import sys, time, torch  # torch makes interpreter shutdown long enough for signals to land in it
from scaling.train.signals import StopFlag
flag = StopFlag().install()
print("ready", flush=True)
while not flag.requested:
    time.sleep(0.001)
flag.{finish}()
sys.exit(3)
"""


def _preempted_exit_under_signal_storm(finish: str) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(finish=finish)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    while child.poll() is None:  # keep signalling through the checkpoint, the exit and the shutdown
        try:
            child.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.0005)
    return child.wait(timeout=60)


def test_signals_after_the_preemption_checkpoint_cannot_turn_exit_3_into_a_kill() -> None:
    """Interpreter shutdown resets Python-level handlers to the default; a SIGTERM landing then used to
    kill a preempted rank (exit -15 instead of 3). `ignore_further()` closes that window."""
    assert _preempted_exit_under_signal_storm("ignore_further") == 3
