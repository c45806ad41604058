"""Ledger and decisions: status merge, deterministic failures, idempotent submission, status table, post."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from launch import ledger
from launch.plan import decide, post_commands
from launch.spec import SweepSpec


def test_record_submission_keeps_trainer_fields(tmp_path: Path) -> None:
    ledger.update_status(tmp_path, state="preempted", last_step=30, budget_steps=100)
    status = ledger.record_submission(tmp_path, "17", 100)
    status = ledger.record_submission(tmp_path, "18", 100)
    assert status["attempts"] == 2 and status["job_ids"] == ["17", "18"]
    assert status["state"] == "submitted" and status["last_step"] == 30


def test_decide_never_duplicates_live_or_completed() -> None:
    alive = f"local-{os.getpid()}"  # this test process: certainly alive
    assert decide({"state": "pending", "job_ids": []}, False, 3) == (True, "new")
    assert decide({"state": "completed", "job_ids": ["1"]}, True, 3)[0] is False
    assert decide({"state": "running", "job_ids": [alive], "attempts": 1}, True, 3)[0] is False
    assert decide({"state": "submitted", "job_ids": [alive], "attempts": 1}, True, 3)[0] is False


def test_decide_resubmits_dead_runs_only_when_asked_and_within_attempts() -> None:
    dead = "local-999999999"
    lost = {"state": "running", "job_ids": [dead], "attempts": 1}
    assert decide(lost, False, 3) == (False, "running, job gone: use --resubmit")
    assert decide(lost, True, 3)[0] is True
    assert decide({**lost, "attempts": 3}, True, 3)[0] is False
    crash = {"state": "failed", "exit_code": 1, "job_ids": [dead], "attempts": 1}
    assert decide(crash, True, 3)[0] is True


def test_deterministic_failures_are_reported_not_resubmitted() -> None:
    for code in (2, 4):
        status = {
            "state": "failed",
            "exit_code": code,
            "reason": "bad",
            "job_ids": ["local-1"],
            "attempts": 1,
        }
        submit, why = decide(status, True, 10)
        assert not submit and f"exit {code}" in why


def test_status_table_reads_metrics(tmp_path: Path) -> None:
    run = tmp_path / "r1"
    ledger.update_status(run, state="running", attempts=1, job_ids=["42"], budget_steps=100, last_step=50)
    rows = [
        {"kind": "train", "step": 50, "wall_s": 100.0},
        {"kind": "val", "step": 50, "val_loss": 0.25, "val_loss_ratio": 0.8125},
    ]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    (row,) = ledger.status_rows(tmp_path, ["r1"])
    assert row["val_loss"] == 0.25 and row["eta"] == 100.0 and row["job"] == "42"
    table = ledger.format_table(ledger.status_rows(tmp_path, ["r1", "r2"], {"r2": 80}))
    lines = table.splitlines()
    assert lines[1].split()[:8] == ["r1", "running", "1", "42", "50/100", "0.25", "0.812", "1m40s"]
    assert lines[2].split()[:5] == ["r2", "pending", "0", "-", "0/80"]


def test_write_run_config_is_idempotent(tmp_path: Path) -> None:
    assert ledger.write_run_config(tmp_path / "r", {"seed": 1})
    assert not ledger.write_run_config(tmp_path / "r", {"seed": 1})
    assert ledger.write_run_config(tmp_path / "r", {"seed": 2})


def test_post_commands_fill_names_and_use_this_python() -> None:
    spec = SweepSpec(name="q", post=["python -m analysis.report {runs_dir}/{name}/ --out x"])
    assert post_commands(spec) == [[sys.executable, "-m", "analysis.report", "runs/q/", "--out", "x"]]
