"""Runs one sweep shares from another (spec key `shared`): planned and paid for once, refused when the two
configs differ, and read in place by the other sweep's analysis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from analysis.fit import fit_source
from analysis.runs import load_sweep
from launch import ledger
from launch.checks import dependency_problem
from launch.precheck import shared_sources, trained_elsewhere
from launch.spec import expand_runs, load_spec
from launch.sweep import main
from scaling.config import ConfigError
from tests.synthetic import TrueLaw, write_run

REPO = Path(__file__).resolve().parents[2]


def _pair(tmp_path: Path, sub_overrides: dict | None = None, shared: dict | None = None) -> Path:
    """Two specs side by side: `pre` trains seeds 0 and 1; `sub` has seeds 1 and 2 and shares seed1."""
    common = {
        "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"),
        "runs_dir": str(tmp_path / "runs"),
        "resources": {"default": {"tasks_per_node": 1, "hours": 0.5}},
    }
    (tmp_path / "pre.yaml").write_text(yaml.safe_dump({"name": "pre", "axes": {"seed": [0, 1]}, **common}))
    sub = {
        "name": "sub",
        "axes": {"seed": [1, 2]},
        "shared": {"seed1": "pre/seed1"} if shared is None else shared,
        **common,
    }
    if sub_overrides:
        sub["overrides"] = sub_overrides
    (tmp_path / "sub.yaml").write_text(yaml.safe_dump(sub))
    return tmp_path / "sub.yaml"


def _plans(path: Path):
    spec, base, site = load_spec(path)
    return spec, expand_runs(spec, base, site, str(path))


def test_dry_run_lists_the_shared_paper_runs_without_gpu_hours(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(REPO / "sweeps/data_scaling.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 runs (1 shared from other sweeps, trained there)" in out
    (line,) = [x for x in out.splitlines() if x.strip().startswith("fraction1 ")]
    assert "shared from model_scaling/m3_steps100000: no GPU-hours here" in line and "GPU ranks" not in line
    assert "total: 400 GPU-hours" in out  # 5 x 4 GPUs x 20 h: the 100 % run is model_scaling's m3
    assert "problem: shared" not in out and "fraction1:" not in out.split("total:")[1]  # no problem names it
    assert main([str(REPO / "sweeps/ablations.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "shared from model_scaling/m5_steps100000" in out and "total: 4,800 GPU-hours" in out


def test_the_paper_sweeps_share_exactly_their_duplicates_with_the_bases_budget_checkpoints() -> None:
    shared = {}
    for name in ("data_scaling", "ablations"):
        path = REPO / "sweeps" / f"{name}.yaml"
        spec, plans = _plans(path)
        dirs, problems = shared_sources(path, plans, spec.config_class)
        assert problems == [], problems
        shared.update({f"{name}/{run}": str(d) for run, d in dirs.items()})
        assert all(
            p.config["budget"]["checkpoint_fractions"] == [0.25, 0.5, 1.0] for p in plans
        )  # paper.yaml
    assert shared == {
        "data_scaling/fraction1": "runs/model_scaling/m3_steps100000",
        "ablations/nameknnn_k30_serializationraster": "runs/model_scaling/m5_steps100000",
    }


def test_a_shared_run_whose_config_differs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _pair(tmp_path, sub_overrides={"optimizer.lr": 1.0e-4, "logging.interval": 7})
    spec, plans = _plans(path)
    _, problems = shared_sources(path, plans, spec.config_class)
    (problem, run), = problems  # fmt: skip
    assert run == "seed1"
    assert problem.startswith(
        f"shared: seed1 would not train what pre/seed1 ({tmp_path / 'pre.yaml'}) trains"
    )
    assert "optimizer.lr differ" in problem and "logging" not in problem  # logging does not change training
    assert main([str(path), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert (
        "problem: seed1: shared: seed1 would not train what pre/seed1" in err and "nothing submitted" in err
    )
    assert not (tmp_path / "runs").exists()


def test_a_shared_name_that_is_no_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"shared.seed7: this sweep has no such run; use one of seed1, seed2"
    ):
        _plans(_pair(tmp_path, shared={"seed7": "pre/seed1"}))
    spec, plans = _plans(_pair(tmp_path, shared={"seed1": "pre/seed9"}))
    (problem, _), = shared_sources(tmp_path / "sub.yaml", plans, spec.config_class)[1]  # fmt: skip
    assert (
        "shared: sweep pre (" in problem
        and "has no run seed9; name one of its runs (seed0, seed1)" in problem
    )
    spec, plans = _plans(_pair(tmp_path, shared={"seed1": "nowhere/seed1"}))
    (problem, _), = shared_sources(tmp_path / "sub.yaml", plans, spec.config_class)[1]  # fmt: skip
    assert problem.startswith("shared: no spec named nowhere beside")
    with pytest.raises(ConfigError, match="shared.seed1='pre': give '<other sweep>/<run>'"):
        _plans(_pair(tmp_path, shared={"seed1": "pre"}))


def test_without_shared_the_duplicate_is_refused_as_trained_twice(tmp_path: Path) -> None:
    path = _pair(tmp_path, shared={})
    spec, plans = _plans(path)
    ((problem, run),) = trained_elsewhere(path, plans, spec.config_class)
    assert run == "seed1" and "trains the same config as its run seed1" in problem
    assert "share that run (shared: {seed1: pre/seed1}" in problem


def test_launch_points_at_the_shared_run_and_the_analysis_reads_it_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A launch submits only seed2 (here: the sweep has only the shared run, so nothing trains), writes
    shared.json, and load_sweep / analysis.fit / --status / depends_on follow it to pre's folder."""
    path = _pair(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["axes"] = {"seed": [1]}
    path.write_text(yaml.safe_dump(data))
    assert main([str(path), "--executor", "local"]) == 0
    assert "seed1: skip (shared from pre/seed1: pending there)" in capsys.readouterr().out
    sub, pre = tmp_path / "runs/sub", tmp_path / "runs/pre"
    record = json.loads((sub / "seed1/shared.json").read_text())
    assert record == {"shared_from": "pre/seed1", "run_dir": "../../pre/seed1"}
    assert sorted(p.name for p in (sub / "seed1").iterdir()) == ["shared.json"]  # no config, no status here
    assert json.loads((sub / "sweep.json").read_text())["runs"]["seed1"]["shared_from"] == "pre/seed1"
    assert ledger.sweep_run_dirs(tmp_path / "runs", "sub") == [pre / "seed1"]  # runs_of reaches the backbone

    rng = np.random.default_rng(0)
    write_run(pre / "seed1", width=64, steps=100, tokens_per_step=2e5, law=TrueLaw(), noise=0.0, rng=rng,
              state="running")  # fmt: skip
    sweep = load_sweep(sub)
    assert sweep.completed == [] and sweep.excluded == [
        ("seed1", "shared run pre/seed1 not completed (state running)")
    ]
    assert [r.name for r in sweep.partial] == ["seed1"]  # its curve so far, for the compute frontier
    assert "1 of 1 runs of sweep sub" in dependency_problem(tmp_path / "runs", "sub")

    write_run(pre / "seed1", width=64, steps=100, tokens_per_step=2e5, law=TrueLaw(), noise=0.0, rng=rng)
    sweep = load_sweep(sub)
    (rec,) = sweep.completed
    assert (rec.name, rec.shared_from, rec.width, sweep.excluded) == ("seed1", "pre/seed1", 64, [])
    assert rec.final_val_loss == pytest.approx(
        json.loads((pre / "seed1/summary.json").read_text())["final_val_loss"]
    )
    assert sweep.notes == [f"run seed1 is pre/seed1, shared from that sweep (read in {pre / 'seed1'})"]
    assert dependency_problem(tmp_path / "runs", "sub") is None
    fit = fit_source(sweep, "compute", n_boot=20)
    assert any("shared from that sweep" in n for n in fit.notes)
    assert main([str(path), "--status"]) == 0
    assert "completed" in capsys.readouterr().out


def test_a_shared_run_not_started_is_excluded_with_its_reason(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "runs/data_scaling"
    rng = np.random.default_rng(1)
    for fraction in (0.1, 0.3):
        write_run(sweep_dir / f"fraction{fraction}", width=256, steps=100, tokens_per_step=2e5 * fraction,
                  law=TrueLaw(), noise=0.0, rng=rng, fraction=fraction)  # fmt: skip
    ledger.write_shared(sweep_dir / "fraction1", "model_scaling/m3", tmp_path / "runs/model_scaling/m3")
    sweep = load_sweep(sweep_dir)
    assert [r.name for r in sweep.completed] == ["fraction0.1", "fraction0.3"]
    ((name, reason),) = sweep.excluded
    assert name == "fraction1" and reason.startswith("shared run model_scaling/m3 not completed (not started")
    write_run(tmp_path / "runs/model_scaling/m3", width=256, steps=100, tokens_per_step=2e5, law=TrueLaw(),
              noise=0.0, rng=rng)  # fmt: skip
    sweep = load_sweep(sweep_dir)
    assert [(r.name, r.fraction) for r in sweep.completed] == [("fraction0.1", 0.1), ("fraction0.3", 0.3),
                                                               ("fraction1", 1.0)]  # fmt: skip
