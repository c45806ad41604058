"""Faults with real DeepSpeed processes: repeated non-finite steps, a checkpoint write that fails (file size
limit, as on a full disk), a world size that changed between save and resume."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_resume import CONFIG, REPO, make_dataset, wait

from scaling.train import checkpoint as ckpt
from scaling.train import load_frozen_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("fault_data") / "data", n_train=32, n_val=8)


def run_one(run_dir: Path, data: Path, *extra: str, file_limit: int | None = None) -> int:
    """One single-process run (`python -m scaling.train`), optionally under a file-size limit."""

    def limit() -> None:
        if file_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    cmd = [sys.executable, "-m", "scaling.train", str(CONFIG), f"data.dataset_dir={data}",
           "budget.checkpoint_fractions=[1.0]", "budget.steps=6", "checkpoint.interval=3", *extra,
           "--run-dir", str(run_dir)]  # fmt: skip
    env = {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "RANK": "0", "WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29611", "PATH": "/usr/bin:/bin",
           "TORCH_EXTENSIONS_DIR": str(REPO / ".cache/torch_extensions")}  # fmt: skip
    return subprocess.run(
        cmd, env=env, cwd=REPO, preexec_fn=limit, capture_output=True, timeout=180
    ).returncode


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def test_repeated_nonfinite_steps_fail_with_exit_4(tmp_path: Path, data: Path) -> None:
    code = run_one(tmp_path, data, "optimizer.lr=1e30", "budget.max_bad_steps=2", "deepspeed.zero_stage=0")
    assert code == 4
    st = status(tmp_path)
    assert st["state"] == "failed" and "non-finite" in st["reason"] and st["exit_code"] == 4
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("skipped") for r in rows) and rows[-1]["bad_steps"] >= 2


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, data: Path) -> None:
    assert run_one(tmp_path, data, "deepspeed.zero_stage=0") == 0
    before = {p.name: p.stat().st_size for p in (tmp_path / "checkpoints/step-00000006").iterdir()}
    code = run_one(tmp_path, data, "deepspeed.zero_stage=0", "budget.steps=9", file_limit=20_000)
    assert code == 1
    st = status(tmp_path)
    assert st["state"] == "failed" and "checkpoint" in st["reason"]
    assert ckpt.find_resume(tmp_path / "checkpoints").name == "step-00000006"
    assert {p.name: p.stat().st_size for p in (tmp_path / "checkpoints/step-00000006").iterdir()} == before
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    model, cfg = load_frozen_model(tmp_path)  # ZeRO stage 0 folders load too
    assert cfg.deepspeed.zero_stage == 0 and sum(p.numel() for p in model.parameters()) > 0


def test_changed_world_size_stops_with_a_clear_message(tmp_path: Path, data: Path) -> None:
    from test_train_resume import launch

    assert run_one(tmp_path, data, "deepspeed.zero_stage=1", "budget.steps=3") == 0
    procs = launch(tmp_path, data, 1, "budget.steps=6", "budget.global_batch_events=4")
    assert wait(procs) == [4, 4]
    reason = status(tmp_path)["reason"]
    assert "world size 1" in reason and "resumed with 2" in reason


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KiB file system (tmpfs): room for one checkpoint of the tiny model (~390 KB), not two."""
    mount = tmp_path / "disk"
    mount.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)]
    done = subprocess.run(cmd, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_fails_with_one_line_and_status_failed(small_disk: Path, data: Path) -> None:
    run_dir = small_disk / "run"
    cmd = [sys.executable, "-m", "scaling.train", str(CONFIG), f"data.dataset_dir={data}",
           "budget.steps=6", "checkpoint.interval=3", "budget.checkpoint_fractions=[1.0]",
           "--run-dir", str(run_dir)]  # fmt: skip
    env = {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "TORCH_EXTENSIONS_DIR": str(REPO / ".cache/torch_extensions")}  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr[-3000:]
    st = status(run_dir)  # was left `running` when the failure could not be recorded
    assert st["state"] == "failed" and st["reason"].startswith("disk full") and "resubmit" in st["reason"]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "disk full" in line]
    assert lines == [f"[rank 0] ERROR {st['reason']}"]
    assert ckpt.find_resume(run_dir / "checkpoints").name == "step-00000003"  # the one that fitted is kept
