"""World size changed between save and resume, with real DeepSpeed on gloo: a 2-process ZeRO checkpoint
converted to the universal form resumes in 1 process with the same fp32 weights and Adam moments (ZeRO 1-3),
and a 1-process one in 2; an unconverted one stops with the command that converts it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_resume import REPO, launch, make_dataset, trajectory, wait

from scaling.atomic import write_json_atomic
from scaling.train import checkpoint as ckpt
from scaling.train.dist import free_port
from scaling.train.universal import UNIVERSAL, convert_checkpoint, main

pytestmark = pytest.mark.integration
SAVED = 3  # the checkpoint every test resumes from
STATES = ("fp32.pt", "exp_avg.pt", "exp_avg_sq.pt", "step.pt")

# One rank: the resumed engine saves its state right away (no step taken) for comparison.
DUMP = """
import sys
from pathlib import Path
from scaling.train import DistEnv, load_train_config
from scaling.train.trainer import Trainer
run_dir = Path(sys.argv[1])
trainer = Trainer(load_train_config(run_dir / "config.yaml"), run_dir, DistEnv.from_environ())
trainer._start()
assert trainer.universal and trainer._resume() == int(sys.argv[3])
trainer.engine.save_checkpoint(sys.argv[2], tag="resumed")
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("universal_data") / "data", n_train=32, n_val=8)


_SAVED: dict[tuple[int, int], Path] = {}


def saved_run(data: Path, factory: pytest.TempPathFactory, *, n: int, stage: int) -> Path:
    """An `n`-process ZeRO-`stage` run stopped at its step-3 checkpoint, once per session (tests copy it)."""
    if (n, stage) not in _SAVED:
        run_dir = factory.mktemp(f"saved{n}_{stage}") / "run"
        run_dir.mkdir()
        assert wait(launch(run_dir, data, stage, f"budget.steps={SAVED}", n=n)) == [0] * n
        _SAVED[n, stage] = run_dir
    return _SAVED[n, stage]


@pytest.fixture
def saved_by_two(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_run(data, tmp_path_factory, n=2, stage=1)


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def universal_states(folder: Path) -> dict[str, torch.Tensor]:
    """{param/state: tensor} of a universal folder."""
    out = {}
    for path in sorted((folder / "zero").glob("*/*.pt")):
        value = torch.load(path, weights_only=False)
        out[f"{path.parent.name}/{path.name}"] = value["param"] if isinstance(value, dict) else value
    return out


def test_unconverted_checkpoint_stops_with_the_conversion_command(saved_by_two: Path, data: Path, tmp_path):
    run_dir = copy_run(saved_by_two, tmp_path / "run")
    assert wait(launch(run_dir, data, 1, "budget.steps=5", n=1)) == [4]
    reason = json.loads((run_dir / "status.json").read_text())["reason"]
    assert "saved with world size 2" in reason and "resumed with 1" in reason
    assert f"python -m scaling.train.universal {run_dir}" in reason


@pytest.mark.parametrize("stage", [1, 2, 3], ids=lambda s: f"zero{s}")
def test_two_to_one_keeps_weights_and_moments(
    stage: int, data: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_dir = copy_run(saved_run(data, tmp_path_factory, n=2, stage=stage), tmp_path / "run")
    assert main([str(run_dir)]) == 0
    folder = run_dir / "checkpoints" / ckpt.step_name(SAVED)
    assert ckpt.read_meta(folder)[UNIVERSAL] is True and not (folder / ".tmp-universal").exists()
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()), DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")  # fmt: skip
    out = tmp_path / "dump"
    proc = subprocess.run([sys.executable, "-c", DUMP, str(run_dir), str(out), str(SAVED)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    write_json_atomic(out / "resumed" / ckpt.MARKER, {"step": SAVED, "world_size": 1, "zero_stage": stage})
    convert_checkpoint(out / "resumed")
    want, got = universal_states(folder / UNIVERSAL), universal_states(out / "resumed" / UNIVERSAL)
    assert set(got) == set(want) and len(want) >= 4 * 10
    for key, value in want.items():
        assert torch.equal(got[key], value), f"{key} changed across the 2 -> 1 resume"
    assert any(k.endswith("exp_avg_sq.pt") and v.abs().sum() > 0 for k, v in got.items())


def test_two_to_one_resume_completes(saved_by_two: Path, data: Path, tmp_path: Path) -> None:
    run_dir = copy_run(saved_by_two, tmp_path / "run")
    assert main([str(run_dir)]) == 0
    assert wait(launch(run_dir, data, 1, "budget.steps=5", n=1)) == [0]
    assert sorted(trajectory(run_dir)) == [1, 2, 3, 4, 5]
    assert json.loads((run_dir / "summary.json").read_text())["world_size"] == 1
    assert ckpt.read_meta(ckpt.find_resume(run_dir / "checkpoints"))["world_size"] == 1


def test_one_to_two_resume_completes(
    data: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_dir = copy_run(saved_run(data, tmp_path_factory, n=1, stage=2), tmp_path / "run")
    assert main([str(run_dir), "--step", str(SAVED)]) == 0
    assert wait(launch(run_dir, data, 2, "budget.steps=5")) == [0, 0]
    assert sorted(trajectory(run_dir)) == [1, 2, 3, 4, 5]
    assert json.loads((run_dir / "summary.json").read_text())["world_size"] == 2


def test_conversion_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
