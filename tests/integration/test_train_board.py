"""TensorBoard output with real DeepSpeed (one process): the event files hold the metrics.jsonl scalars, one
value per step, also after a run killed past a checkpoint is resumed (the killed attempt's steps purged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_resume import CONFIG, REPO, last_step, make_dataset, until

from scaling.train.dist import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("board_data") / "data", n_train=32, n_val=8)


def start(run_dir: Path, data: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", RANK="0", WORLD_SIZE="1",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               TORCH_EXTENSIONS_DIR=str(REPO / ".cache/torch_extensions"))  # fmt: skip
    cmd = [sys.executable, "-m", "scaling.train", str(CONFIG), f"data.dataset_dir={data}", "budget.steps=6",
           "budget.checkpoint_fractions=[1.0]", "checkpoint.interval=3", "budget.val_interval=4",
           "logging.interval=1", *extra, "--run-dir", str(run_dir)]  # fmt: skip
    log = open(run_dir.parent / "train.log", "a")
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=log)


def board_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} as TensorBoard shows them (purged events removed)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def jsonl_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The same tags built from metrics.jsonl."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()):
        if row["kind"] == "val":
            pairs = {"val/loss": row["val_loss"]}
        else:
            pairs = {f"train/{k}": row[k] for k in ("loss", "grad_norm", "tokens_per_s", "mfu")}
            pairs.update({f"lr/{g}": v for g, v in row["lr"].items()})
        for tag, value in pairs.items():
            if value is not None:
                out.setdefault(tag, []).append((row["step"], value))
    return out


def test_tensorboard_matches_metrics_after_kill_and_resume(tmp_path: Path, data: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = start(run_dir, data, "logging.tensorboard=true")
    # row 5 in metrics.jsonl: row 4 is in the event file too; the step-6 checkpoint is a step away
    until(lambda: last_step(run_dir) >= 5, [proc])
    proc.kill()
    proc.wait()
    assert (run_dir / "checkpoints/latest").read_text().strip() == "step-00000003"
    killed = board_scalars(run_dir / "tensorboard")
    assert max(s for s, _ in killed["train/loss"]) >= 4, "the killed attempt logged nothing to purge"
    assert start(run_dir, data, "logging.tensorboard=true").wait(timeout=120) == 0

    got, want = board_scalars(run_dir / "tensorboard"), jsonl_scalars(run_dir)
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert set(got) == set(want) and {"train/loss", "train/grad_norm", "val/loss"} <= set(got)
    assert any(tag.startswith("lr/") for tag in got) and "train/mfu" not in got  # no peak known on CPU
    for tag, rows in want.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in rows] == sorted({s for s, _ in rows}), tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in rows], rel=1e-6), tag
    assert [s for s, _ in got["train/loss"]] == list(range(1, 7))


def test_tensorboard_off_writes_and_imports_nothing(tmp_path: Path) -> None:
    code = (
        "import sys; import scaling.train.trainer; from scaling.train import board; "
        "from pathlib import Path; assert board.open_board(False, Path('.'), 0) is None; "
        "print([m for m in sys.modules if m.split('.')[0] == 'tensorboard' or 'utils.tensorboard' in m])"
    )
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
