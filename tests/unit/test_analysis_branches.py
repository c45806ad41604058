"""Cooldown branches (branches.jsonl) as points of the compute and joint laws."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.fit import fit_source, format_fit
from analysis.runs import COOLDOWN_BRANCH, load_sources, load_sweep
from tests.synthetic import TrueLaw, params_of_width, write_sweep

WIDTHS = [64, 128, 256, 512]
STEPS, TOKENS_PER_STEP = 300, 2e5


def add_branches(run_dir: Path, steps: list[int], gain: float = 0.9) -> list[dict]:
    """branches.jsonl as the trainer writes it: a cooldown of 0.2 x s steps from each s, its loss `gain` x
    the generating law's there (a cooled-down model beats the stable phase's), plus an abandoned branch."""
    n, rows = params_of_width(int(run_dir.name[1:])), []
    for s in steps:
        end = s + int(np.ceil(0.2 * s))
        tokens = end * TOKENS_PER_STEP
        loss = float(TrueLaw().loss(n, tokens)) * gain
        rows.append({"branch_from": s, "steps": end, "cooldown_steps": end - s, "events": end * 8,
                     "tokens": tokens, "flops": 6.0 * n * tokens, "params_total": n * 1.01,
                     "params_non_embedding": n, "val_loss": loss, "val_loss_ratio": loss / 4.0,
                     "wall_s": end * 0.1, "source": COOLDOWN_BRANCH})  # fmt: skip
    rows.append({"branch_from": 10, "steps": 12, "val_loss": None, "aborted": "3 non-finite steps"})
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"branch_from": 2'  # and a torn line
    (run_dir / "branches.jsonl").write_text(text)
    return rows


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    write_sweep(tmp_path / "wsd", widths=WIDTHS, steps=STEPS, tokens_per_step=TOKENS_PER_STEP)
    add_branches(tmp_path / "wsd" / "w64", [75, 150])
    add_branches(tmp_path / "wsd" / "w512", [75])
    return tmp_path / "wsd"


def test_branch_rows_become_labelled_one_point_records(sweep_dir: Path) -> None:
    sweep = load_sweep(sweep_dir)
    run = next(r for r in sweep.completed if r.name == "w64")
    assert [b.name for b in run.branches] == ["w64@cooldown75", "w64@cooldown150"]  # aborted: no point
    b = run.branches[0]
    assert b.source == COOLDOWN_BRANCH and b.parent == "w64" and b.branch_from == 75 and b.steps == 90
    assert b.tokens == 90 * TOKENS_PER_STEP
    assert b.flops == pytest.approx(6 * run.params_non_embedding * b.tokens)
    assert b.val.flops.tolist() == [b.flops] and b.val_ratio.loss[0] == pytest.approx(b.final_val_loss / 4)
    assert b.params_non_embedding == run.params_non_embedding and b.width == 64
    assert len(sweep.branch_points) == 3 and len(sweep.completed) == len(WIDTHS)  # no extra runs
    assert all(r.source == "run" and not r.branches for r in sweep.completed if r.name in ("w128", "w256"))


def test_compute_frontier_takes_branch_points(sweep_dir: Path) -> None:
    without = fit_source(load_sweep(sweep_dir), "compute", n_boot=0)
    sweep = load_sweep(sweep_dir)
    fit = fit_source(sweep, "compute", n_boot=20)
    assert fit.derived["n_cooldown_branches"] == 3 and fit.derived["n_runs"] == len(WIDTHS)
    assert any("3 cooldown-branch point(s) of 2 WSD run(s)" in n for n in fit.notes)
    optimal = {seg["run"] for seg in fit.derived["optimal_runs"]}
    assert optimal & {"w64@cooldown75", "w64@cooldown150", "w512@cooldown75"}  # 10 % below the curves
    lowest = min(p["frontier_val_loss"] for p in fit.points)
    assert lowest <= min(p["frontier_val_loss"] for p in without.points)
    assert "cooldown" in format_fit(fit)


def test_joint_law_takes_branch_points_and_drops_stable_phase_checkpoints(sweep_dir: Path) -> None:
    fit = fit_source(load_sweep(sweep_dir), "joint", n_boot=10)
    names = {p["name"]: p for p in fit.points}
    assert names["w64@cooldown75"]["source"] == COOLDOWN_BRANCH
    assert names["w64@cooldown75"]["tokens"] == 90 * TOKENS_PER_STEP
    assert names["w128@75"]["source"] == "run"  # a cosine run keeps its budget checkpoints
    assert "w64@75" not in names and "w64" in names  # a WSD run with branches: only its final point
    assert fit.n_points == 3 * 2 + 2 * 1 + 3 and any("joint points include 3" in n for n in fit.notes)


def test_branches_of_merged_sweeps_are_named_by_sweep(sweep_dir: Path, tmp_path: Path) -> None:
    other = write_sweep(tmp_path / "cosine", widths=[96], steps=STEPS, tokens_per_step=TOKENS_PER_STEP)
    merged = load_sources([sweep_dir, other])
    assert {b.name for b in merged.branch_points} == {"wsd/w64@cooldown75", "wsd/w64@cooldown150",
                                                      "wsd/w512@cooldown75"}  # fmt: skip
    assert {b.parent for b in merged.branch_points} == {"wsd/w64", "wsd/w512"}
