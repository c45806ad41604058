"""Exact resume with real DeepSpeed, 2 CPU processes on gloo: a run killed (mid-step, mid-checkpoint-write)
or preempted by a signal and then resumed gives the same loss trajectory and final weights as one that never
stopped, for ZeRO stages 1, 2 and 3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scaling.data.shards import write_dataset
from scaling.data.simulator import simulate_events, small_config
from scaling.train import load_frozen_model
from scaling.train.dist import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "scaling/train/configs/tiny_cpu.yaml"
STEPS = 12


def make_dataset(root: Path, n_train: int = 64, n_val: int = 16) -> Path:
    """A small simulated dataset (the simulator's small preset), train + validation splits."""
    cfg = small_config()
    splits = {
        "train": simulate_events(n_train, 0, cfg),
        "val": simulate_events(n_val, 0, cfg, n_train),
    }
    write_dataset(root, splits, shard_events=32, provenance={"source": "simulator", "profile": "small"})
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("train_data") / "data")


def launch(
    run_dir: Path,
    dataset: Path,
    stage: int,
    *extra: str,
    n: int = 2,
    entry: tuple[str, ...] = ("-m", "scaling.train"),
) -> list[subprocess.Popen]:
    """`n` ranks of `python -m scaling.train` (or `python ENTRY`), torchrun-style variables, as the launcher
    starts them."""
    port = free_port()
    procs = []
    for rank in range(n):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE=str(n),
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            DS_ACCELERATOR="cpu",
            OMP_NUM_THREADS="1",
            TORCH_EXTENSIONS_DIR=str(REPO / ".cache/torch_extensions"),
        )
        cmd = [
            sys.executable,
            *entry,
            str(CONFIG),
            f"data.dataset_dir={dataset}",
            f"deepspeed.zero_stage={stage}",
            f"budget.steps={STEPS}",
            "budget.checkpoint_fractions=[1.0]",
            "checkpoint.interval=4",
            "budget.val_interval=6",
            *extra,
            "--run-dir",
            str(run_dir),
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=open(run_dir.parent / f"{run_dir.name}.rank{rank}.log", "a"),
            )
        )
    return procs


def wait(procs: list[subprocess.Popen], timeout: float = 120) -> list[int]:
    return [p.wait(timeout=timeout) for p in procs]


def until(check, procs: list[subprocess.Popen], timeout: float = 120, poll: float = 0.002) -> None:
    end = time.time() + timeout
    while not check():
        if time.time() > end or any(p.poll() is not None for p in procs):
            raise AssertionError("the condition never held before the run ended")
        time.sleep(poll)


def last_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]
    return max((r["step"] for r in rows if r["kind"] == "train"), default=0)


def trajectory(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "a resumed run duplicated or reordered metric rows"
    return {r["step"]: r["loss"] for r in rows if r["kind"] == "train"}


def assert_same_run(run: Path, ref: Path) -> None:
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    assert trajectory(run) == trajectory(ref)
    assert len(trajectory(run)) == STEPS
    got, _ = load_frozen_model(run)
    want, _ = load_frozen_model(ref)
    for (name, a), (_, b) in zip(got.state_dict().items(), want.state_dict().items(), strict=True):
        assert torch.equal(a, b), f"weights differ after resume: {name}"


_REFERENCES: dict[int, Path] = {}


def reference_run(stage: int, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run of `stage` (once per session)."""
    if stage not in _REFERENCES:
        run_dir = tmp_path_factory.mktemp(f"ref{stage}") / "run"
        run_dir.mkdir()
        assert wait(launch(run_dir, dataset, stage)) == [0, 0]
        _REFERENCES[stage] = run_dir
    return _REFERENCES[stage]


@pytest.fixture(params=[1, 2, 3], ids=lambda s: f"zero{s}")
def reference(request: pytest.FixtureRequest, dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    return request.param, reference_run(request.param, dataset, tmp_path_factory)


def test_sigkill_mid_step_then_resume_is_exact(reference, dataset: Path, tmp_path: Path) -> None:
    stage, ref = reference
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    procs = launch(run_dir, dataset, stage)
    until(lambda: last_step(run_dir) >= 6, procs)  # past the step-4 checkpoint, inside step 7
    for p in procs:
        p.kill()
    wait(procs)
    assert wait(launch(run_dir, dataset, stage)) == [0, 0]
    assert_same_run(run_dir, ref)


def test_sigkill_mid_checkpoint_write_then_resume_is_exact(reference, dataset: Path, tmp_path: Path) -> None:
    stage, ref = reference
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    procs = launch(run_dir, dataset, stage)
    tmp = run_dir / "checkpoints" / ".tmp-step-00000008"
    until(tmp.exists, procs)
    for p in procs:
        p.kill()
    wait(procs)
    assert tmp.exists() and not (run_dir / "checkpoints" / "step-00000008").exists()
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000004"
    assert wait(launch(run_dir, dataset, stage)) == [0, 0]
    assert not tmp.exists(), "the partial checkpoint folder was not cleaned up"
    assert_same_run(run_dir, ref)


def test_preempt_signal_checkpoints_exits_3_and_resumes_exactly(
    dataset: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stage = 2  # signal handling does not depend on the ZeRO stage; one stage keeps the suite fast
    ref = reference_run(stage, dataset, tmp_path_factory)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    procs = launch(run_dir, dataset, stage)
    until(lambda: last_step(run_dir) >= 2, procs)
    for p in procs:
        p.send_signal(signal.SIGUSR2)
    time.sleep(0.05)
    for p in procs:  # a second signal, likely during the save, must not corrupt it
        p.send_signal(signal.SIGTERM)
    assert wait(procs) == [3, 3]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "preempted" and status["exit_code"] == 3
    saved = (run_dir / "checkpoints" / "latest").read_text().strip()
    assert saved == f"step-{status['last_step']:08d}" and status["last_step"] < STEPS
    assert wait(launch(run_dir, dataset, stage)) == [0, 0]
    assert_same_run(run_dir, ref)


_REPORT_THREADS = (
    "-c",
    "import os, sys, torch; from scaling.train.__main__ import main; code = main(sys.argv[1:]); "
    "names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]; "
    "print('process group still up:', torch.distributed.is_initialized(), file=sys.stderr); "
    "print('threads at exit:', sorted(names), file=sys.stderr); sys.exit(code)",
)


def test_ranks_release_the_process_groups_before_exit(dataset: Path, tmp_path: Path) -> None:
    """A completed run leaves no gloo group, and none of its threads, to interpreter shutdown (where freeing
    them can abort a rank with SIGABRT): the DeepSpeed engine and every reference to the groups are gone."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert wait(launch(run_dir, dataset, 1, "budget.steps=2", entry=_REPORT_THREADS)) == [0, 0]
    for rank in range(2):
        log = (tmp_path / f"run.rank{rank}.log").read_text()
        assert "process group still up: False" in log, log[-2000:]
        threads = log.split("threads at exit:")[-1].splitlines()[0]
        assert "gloo" not in threads and "tcpstore" not in threads, f"rank {rank}: {threads}"
