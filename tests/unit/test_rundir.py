"""The run-directory contract (scaling/rundir.py): one status.json merge for the launcher, the trainer and
the downstream runs, its answer for a missing or unreadable file, and which exit codes are deterministic."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaling import rundir

REPO = Path(__file__).resolve().parents[2]


def _read(run_dir: Path) -> dict:
    return json.loads((run_dir / rundir.STATUS).read_text())


def test_merge_keeps_what_the_other_writer_recorded(tmp_path: Path) -> None:
    from launch.ledger import record_submission
    from scaling.train.ledger import update_status as trainer_update

    record_submission(tmp_path, "41", 100)  # the launcher: submitted, attempt 1
    trainer_update(tmp_path, state=rundir.RUNNING, last_step=20)  # the trainer
    got = record_submission(tmp_path, "42", 100)  # resubmitted
    assert got == _read(tmp_path)
    assert (got["state"], got["attempts"], got["job_ids"]) == ("submitted", 2, ["41", "42"])
    assert got["last_step"] == 20 and got["budget_steps"] == 100
    # a later field wins, the others stay
    got = rundir.update_status(tmp_path, state=rundir.FAILED, exit_code=rundir.EXIT_FAILED, reason="NaN")
    assert (got["state"], got["exit_code"], got["reason"], got["last_step"]) == ("failed", 4, "NaN", 20)
    assert got["job_ids"] == ["41", "42"] and got["attempts"] == 2


def test_missing_file_reads_as_pending_with_no_attempts(tmp_path: Path) -> None:
    assert rundir.read_status(tmp_path / "nowhere") == {
        "state": "pending",
        "attempts": 0,
        "job_ids": [],
        "reason": None,
    }
    got = rundir.update_status(tmp_path / "new", state=rundir.RUNNING)  # creates the folder
    assert (got["state"], got["attempts"], got["job_ids"]) == ("running", 0, [])
    stamp = dt.datetime.fromisoformat(_read(tmp_path / "new")["updated"])
    assert stamp.utcoffset() == dt.timedelta(0) and abs(dt.datetime.now(dt.UTC) - stamp).total_seconds() < 60


@pytest.mark.parametrize("text", ["{cut off", "[1, 2]", ""])
def test_unreadable_file_reads_as_pending_and_is_rewritten_whole(tmp_path: Path, text: str) -> None:
    (tmp_path / rundir.STATUS).write_text(text)
    assert rundir.read_status(tmp_path) == rundir.new_status("unreadable status.json")
    got = rundir.update_status(tmp_path, state=rundir.RUNNING, reason=None)
    assert _read(tmp_path) == got
    assert (got["state"], got["attempts"], got["reason"]) == ("running", 0, None)


def test_a_readable_file_gets_the_defaults_it_lacks(tmp_path: Path) -> None:
    (tmp_path / rundir.STATUS).write_text(json.dumps({"state": "completed", "custom": 1}))
    got = rundir.read_status(tmp_path)
    assert got == {"state": "completed", "attempts": 0, "job_ids": [], "reason": None, "custom": 1}


def test_status_honours_the_umask_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        rundir.update_status(tmp_path, state=rundir.RUNNING)
        rundir.update_status(tmp_path, last_step=5)
    finally:
        os.umask(old)
    assert (tmp_path / rundir.STATUS).stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == [rundir.STATUS]


def test_overwrite_in_place_merges_and_needs_an_existing_file(tmp_path: Path) -> None:
    assert rundir.overwrite_status(tmp_path, state=rundir.FAILED) is False
    rundir.update_status(tmp_path, state=rundir.RUNNING, job_ids=["7"], last_step=40)
    assert rundir.overwrite_status(tmp_path, state=rundir.FAILED, exit_code=1, reason="disk full")
    got = _read(tmp_path)
    assert (got["state"], got["exit_code"], got["job_ids"], got["last_step"]) == ("failed", 1, ["7"], 40)


def test_exit_code_classification() -> None:
    codes = (rundir.EXIT_OK, rundir.EXIT_CRASH, rundir.EXIT_CONFIG, rundir.EXIT_PREEMPTED, rundir.EXIT_FAILED)
    assert codes == (0, 1, 2, 3, 4)  # the documented numbers (README, sbatch scripts)
    assert [c for c in (*codes, None, -9, 137) if rundir.is_deterministic(c)] == [2, 4]
    assert set(rundir.SELF_REPORTED_EXIT_CODES) == {2, 3, 4}
    failed = {"state": "failed", "exit_code": 2}
    assert rundir.is_deterministic_failure(failed)
    assert not rundir.is_deterministic_failure({**failed, "exit_code": 1})  # a crash: resubmitted
    assert not rundir.is_deterministic_failure({**failed, "state": "preempted"})
    assert not rundir.is_deterministic_failure({"state": "failed"})


def test_trainer_and_downstream_use_the_contract_codes() -> None:
    from analysis.downstream.__main__ import main as downstream_main
    from scaling.train import exits as loop

    assert (loop.EXIT_OK, loop.EXIT_CONFIG, loop.EXIT_PREEMPTED, loop.EXIT_FAILED) == (0, 2, 3, 4)
    assert loop.EXIT_CRASH is rundir.EXIT_CRASH
    assert downstream_main([]) == rundir.EXIT_CONFIG  # no --run-dir


def test_contract_module_imports_nothing_heavy() -> None:
    probe = "import sys, scaling.rundir; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
