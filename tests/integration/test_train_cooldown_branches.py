"""Cooldown branches of a WSD run with real DeepSpeed (one CPU process): rows at the branch steps, the main
run bit for bit the run without branches, and a kill or preemption inside a branch redoing only that one."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from test_train_resume import make_dataset
from tiny_train import REPO, tiny_command, train_tiny

from scaling.train import checkpoint as ckpt
from scaling.train import load_frozen_model
from scaling.train.branches import branch_name, read_branches

pytestmark = pytest.mark.integration

# 24 steps, warm-up 4, cooldown from step 14 (0.4 x 24 = 9.6 -> 10 steps): branches from steps 6 (3 steps of
# cooldown, its checkpoint written for the branch) and 12 (5 steps, a periodic checkpoint already there)
STEPS = 24
WSD = ("schedule.name=wsd", "schedule.decay_fraction=0.4", f"budget.steps={STEPS}", "budget.val_interval=6",
       "checkpoint.interval=4", "budget.checkpoint_fractions=[1.0]",
       "logging.progress_interval=1")  # fmt: skip
BRANCHES = "schedule.cooldown_branches=[0.25, 0.5]"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("branch_data") / "data", n_train=64, n_val=16)


@pytest.fixture(scope="module")
def plain(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The WSD run without branches."""
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    done = train_tiny(run_dir, data, *WSD)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def branched(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The same run with branches from steps 6 and 12, uninterrupted: (run dir, its log)."""
    run_dir = tmp_path_factory.mktemp("branched") / "run"
    done = train_tiny(run_dir, data, *WSD, BRANCHES)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, done.stderr


def rows(run_dir: Path, kind: str) -> dict[int, dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    out = [json.loads(x) for x in lines if json.loads(x)["kind"] == kind]
    assert [r["step"] for r in out] == sorted({r["step"] for r in out}), "duplicated or reordered rows"
    return {r["step"]: r for r in out}


def assert_same_main_run(run: Path, ref: Path) -> None:
    """Loss at every step, every validation and the final weights identical (not merely close)."""
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    train, want = rows(run, "train"), rows(ref, "train")
    assert len(train) == STEPS and {s: r["loss"] for s, r in train.items()} == {
        s: r["loss"] for s, r in want.items()
    }
    assert {s: r["val_loss"] for s, r in rows(run, "val").items()} == {
        s: r["val_loss"] for s, r in rows(ref, "val").items()
    }
    for key in ("tokens", "events", "flops", "final_val_loss"):
        got, exp = (json.loads((d / "summary.json").read_text())[key] for d in (run, ref))
        assert got == exp, key
    got, _ = load_frozen_model(run)
    exp, _ = load_frozen_model(ref)
    for (name, a), (_, b) in zip(got.state_dict().items(), exp.state_dict().items(), strict=True):
        assert torch.equal(a, b), f"main-run weights differ with branches: {name}"


def test_branches_leave_the_main_run_bit_identical(plain: Path, branched: tuple[Path, str]) -> None:
    run_dir, _ = branched
    assert_same_main_run(run_dir, plain)
    assert not (plain / "branches.jsonl").exists()


def test_branch_rows_weights_and_log(plain: Path, branched: tuple[Path, str]) -> None:
    run_dir, log = branched
    got = read_branches(run_dir)
    assert [(r["branch_from"], r["steps"], r["cooldown_steps"]) for r in got] == [(6, 9, 3), (12, 17, 5)]
    train = rows(run_dir, "train")
    for row in got:
        s = row["branch_from"]
        assert row["source"] == "cooldown_branch" and row["bad_steps"] == 0
        for key in ("val_loss", "val_loss_ratio", "val_loss_ratio_layer_eta"):
            assert isinstance(row[key], float) and 0 < row[key] < 1e3, key
        assert set(row["val_coord_ratio"]) and row["params_non_embedding"] > 0
        # consumed up to s + d: the main run's totals at s plus d steps of events (4 per step)
        assert row["events"] == train[s]["events"] + 4 * row["cooldown_steps"]
        assert row["tokens"] > train[s]["tokens"] and row["flops"] > train[s]["flops"]
        assert row["wall_s"] >= train[s]["wall_s"]
        # the branch's weights: complete, loadable, never resumed from
        folder = run_dir / row["checkpoint"]
        assert folder == run_dir / "checkpoints" / branch_name(s)
        model, _ = load_frozen_model(folder)
        assert sum(p.numel() for p in model.parameters()) > 0
    assert all(p.name.startswith("step-") for _, p in ckpt.complete_checkpoints(run_dir / "checkpoints"))
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == ckpt.step_name(STEPS)
    assert got[0]["val_loss"] != got[1]["val_loss"]
    # progress lines say they belong to a branch; the branch's LR decays (1-sqrt) from the peak
    assert "cooldown branch from step 12: step 17/17" in log and "cooldown branch from step 6: 3 steps" in log
    assert "main run restored from" in log


def start(run_dir: Path, data: Path, log: Path) -> subprocess.Popen:
    cmd, env = tiny_command(run_dir, data, *WSD, BRANCHES)
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "preempt"])
def test_stop_inside_a_branch_redoes_only_that_branch(
    sig: signal.Signals, data: Path, plain: Path, branched: tuple[Path, str], tmp_path: Path
) -> None:
    run_dir, first, second = tmp_path / "run", tmp_path / "first.log", tmp_path / "second.log"
    proc = start(run_dir, data, first)
    end = time.time() + 300
    while "cooldown branch from step 12: step 14/17" not in first.read_text():  # inside the second branch
        assert proc.poll() is None and time.time() < end, first.read_text()[-3000:]
        time.sleep(0.002)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert [r["branch_from"] for r in read_branches(run_dir)] == [6], "the signal came after the branch"
    if sig == signal.SIGTERM:  # preempted: exit 3, the checkpoint at the branch point is the run's state
        status = json.loads((run_dir / "status.json").read_text())
        assert code == 3 and status["state"] == "preempted" and status["last_step"] == 12
        assert "cooldown branch from step 12 stopped by signal" in first.read_text()
    assert ckpt.find_resume(run_dir / "checkpoints").name == ckpt.step_name(12)
    cmd, env = tiny_command(run_dir, data, *WSD, BRANCHES)
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    second.write_text(done.stderr)
    assert "cooldown branch from step 12: 5 steps" in done.stderr
    assert "cooldown branch from step 6" not in done.stderr  # recorded: not redone
    ref_rows = read_branches(branched[0])
    got = read_branches(run_dir)
    assert [r["branch_from"] for r in got] == [6, 12]
    for key in ("steps", "events", "tokens", "flops", "val_loss", "val_loss_ratio"):
        assert [r[key] for r in got] == [r[key] for r in ref_rows], key  # the redone branch is the same
    assert_same_main_run(run_dir, plain)
