"""Specs of another entry point (downstream adapters): config_class, inline base, runs_of axes, when/set
overrides, run_name formats, depends_on, and the guard against reusing a run whose config changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from launch import sweep as cli
from launch.checks import config_diff, dependency_problem
from launch.plan import config_changes
from launch.spec import expand_runs, load_spec, resolve_config
from scaling.config import ConfigError

DS_CLASS = "analysis.downstream.train.DownstreamConfig"


def make_sweep(runs: Path, name: str, states: dict[str, str]) -> Path:
    """A finished-looking earlier sweep: sweep.json plan plus one status.json per run."""
    folder = runs / name
    for run, state in states.items():
        (folder / run).mkdir(parents=True)
        (folder / run / "status.json").write_text(json.dumps({"state": state}))
    (folder / "sweep.json").write_text(json.dumps({"runs": {r: {} for r in states}}))
    return folder


def ds_spec(tmp_path: Path, **extra) -> Path:
    data = {
        "name": "ds",
        "entry": "analysis.downstream",
        "config_class": DS_CLASS,
        "depends_on": "pre",
        "runs_dir": str(tmp_path / "runs"),
        "base": {
            "dataset": "data/x",
            "eval_split": "val",
            "budget": {"steps": 7, "batch_events": 3},
            "optimizer": {"lr": 0.002},
        },
        "axes": {
            "backbone": {"runs_of": "pre", "plus": ["adapter_only"]},
            "task": ["pid", "tracking"],
            "seed": [0],
        },
        "overrides": [
            {"when": {"task": "tracking"}, "set": {"adapter": {"loss": "ce"}, "budget": {"steps": 9}}},
            {"when": {"backbone": "adapter_only"}, "set": {"stem_width": 32}},
        ],
        "run_name": "{task}-{backbone_name}-s{seed}",
        **extra,
    }
    path = tmp_path / "ds.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def expand(path: Path):
    spec, base, site = load_spec(path)
    return expand_runs(spec, base, site, str(path))


def test_downstream_expansion(tmp_path: Path) -> None:
    make_sweep(tmp_path / "runs", "pre", {"w16": "completed", "w32": "completed"})
    plans = expand(ds_spec(tmp_path))
    names = [p.name for p in plans]
    assert names == [
        "pid-w16-s0", "tracking-w16-s0", "pid-w32-s0", "tracking-w32-s0",
        "pid-adapter_only-s0", "tracking-adapter_only-s0",
    ]  # fmt: skip
    by = {p.name: p for p in plans}
    assert all(p.entry == "analysis.downstream" for p in plans)
    cfg = resolve_config(by["tracking-w32-s0"], "ds.yaml")
    assert type(cfg).__name__ == "DownstreamConfig"
    assert cfg.backbone == str(tmp_path / "runs/pre/w32") and cfg.task == "tracking"
    # the when/set merge is nested: budget.batch_events from base survives beside the overridden budget.steps
    assert cfg.adapter.loss == "ce" and cfg.budget.steps == 9 and cfg.budget.batch_events == 3
    assert cfg.optimizer.lr == 0.002
    pid = resolve_config(by["pid-w16-s0"], "ds.yaml")
    assert pid.adapter.loss != "ce" or pid.budget.steps == 7
    assert pid.budget.steps == 7 and pid.stem_width != 32
    assert resolve_config(by["pid-adapter_only-s0"], "ds.yaml").stem_width == 32
    assert "run" not in by["pid-w16-s0"].config  # DownstreamConfig has no run identity field


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"axes": {"tsk": ["pid"]}}, "axes.tsk: 'tsk' is not a DownstreamConfig key"),
        ({"axes": {"backbone": {"runs_off": "pre"}}}, "axes.backbone: unknown key 'runs_off'"),
        (
            {"overrides": [{"when": {"task": "pid"}, "set": {"adapter": {"losss": "ce"}}}]},
            "overrides[0].set.adapter.losss: not a DownstreamConfig key",
        ),
        ({"overrides": [{"when": {"colour": 1}, "set": {}}]}, "overrides[0].when.colour: not an axis"),
        # the adapter's optimisation keys once had their own spellings: refused with the new one
        (
            {"overrides": [{"when": {"task": "pid"}, "set": {"optim": {"steps": 9}}}]},
            "overrides[0].set.optim: not a DownstreamConfig key; 'optim.steps' is now spelled 'budget.steps'",
        ),
        ({"axes": {"optim.lr": [1e-3]}}, "'optim.lr' is now spelled 'optimizer.lr'"),
        ({"overrides": [{"when": {"task": "pdi"}, "set": {}}]}, "'pdi' is not a value of that axis"),
        ({"overrides": [{"set": {"seed": 1}, "if": 2}]}, "overrides[0]: must be {when:"),
        ({"run_name": "{task}-{size}"}, "run_name: {size} is not an axis"),
        ({"run_name": "{task}-s{seed}"}, "two runs share the name pid-s0"),
        ({"config_class": "analysis.nowhere.Cfg"}, "config_class: cannot import 'analysis.nowhere.Cfg'"),
        ({"entry": "no_such_pkg.main"}, "entry: module no_such_pkg.main is not importable"),
        (
            {"axes": {"backbone": {"runs_of": "empty"}, "task": ["pid", "tracking"]}},
            "axes.backbone.runs_of: sweep empty has no runs",
        ),
    ],
)
def test_bad_downstream_specs_name_key_and_file(tmp_path: Path, extra: dict, needle: str) -> None:
    make_sweep(tmp_path / "runs", "pre", {"w16": "completed"})
    path = ds_spec(tmp_path, **extra)
    with pytest.raises(ConfigError) as err:
        expand(path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_old_adapter_keys_in_base_are_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    make_sweep(tmp_path / "runs", "pre", {"w16": "completed"})
    path = ds_spec(tmp_path, base={"dataset": "data/x", "optim": {"warmup_steps": 5}}, site="local")
    assert cli.main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("'optim.warmup_steps' is now spelled 'schedule.warmup_steps'")
    assert str(path) in err


def test_depends_on_refuses_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_sweep(tmp_path / "runs", "pre", {"w16": "completed", "w32": "running", "w48": "failed"})
    path = ds_spec(tmp_path, site="local")
    assert cli.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "depends on pre: 2 of 3 runs of sweep pre" in err
    assert "w32 running, w48 failed" in err and "w16" not in err
    assert not (tmp_path / "runs/ds").exists()  # nothing was prepared, nothing started
    assert cli.main([str(path), "--status"]) == 0
    out = capsys.readouterr().out
    assert "pid-w16-s0" in out and "depends on pre: 2 of 3 runs" in out
    assert dependency_problem(tmp_path / "runs", "nothing-here").startswith("sweep nothing-here has no runs")


def test_dependency_met(tmp_path: Path) -> None:
    make_sweep(tmp_path / "runs", "pre", {"w16": "completed", "w32": "completed"})
    assert dependency_problem(tmp_path / "runs", "pre") is None
    assert dependency_problem(tmp_path, str(tmp_path / "runs/pre")) is None  # a folder path works too


def test_config_diff_names_dotted_keys() -> None:
    old = {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": None}
    assert config_diff(old, old) == []
    assert config_diff(old, {"a": 1, "b": {"c": 3, "d": [1, 2]}, "e": None, "f": 0}) == ["b.c", "f"]


def test_started_run_with_changed_config_is_reported(tmp_path: Path) -> None:
    make_sweep(tmp_path / "runs", "pre", {"w16": "completed"})
    path = ds_spec(tmp_path)
    plans = expand(path)
    sweep_dir = tmp_path / "runs/ds"
    done, fresh = plans[0], plans[1]
    for plan, state in ((done, "completed"), (fresh, "pending")):
        run_dir = sweep_dir / plan.name
        run_dir.mkdir(parents=True)
        cfg = yaml.safe_load(yaml.safe_dump(plan.config))
        cfg["optimizer"]["lr"] = 0.5  # what the spec said when the run was started
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
        (run_dir / "status.json").write_text(json.dumps({"state": state, "job_ids": []}))
    changed, _ = config_changes(sweep_dir, plans, str(path))
    assert changed == {done.name: ["optimizer.lr"]}  # a never-started run just gets the new config


def test_cpu_study_downstream_spans_30x_every_regime_three_seeds_every_backbone(tmp_path: Path) -> None:
    """sweeps/cpu_study_downstream.yaml over a stand-in of the cpu_study sweep: every backbone x regime x
    task x budget x seed, budgets spanning >= 30x, every run config valid for DownstreamConfig."""
    repo = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((repo / "sweeps" / "cpu_study_downstream.yaml").read_text())
    data["runs_dir"] = str(tmp_path / "runs")
    assert data["axes"]["backbone"]["runs_of"] == data["depends_on"] == "runs/cpu_study"  # the study's folder
    data["axes"]["backbone"]["runs_of"] = data["depends_on"] = str(tmp_path / "runs" / "cpu_study")
    path = tmp_path / "cpu_study_downstream.yaml"
    path.write_text(yaml.safe_dump(data))
    make_sweep(
        tmp_path / "runs", "cpu_study", {"w32-f1.0-physical": "completed", "w128-f1.0-physical": "completed"}
    )
    plans = expand(path)
    budgets = sorted({p.values["n_train_events"] for p in plans})
    assert budgets[-1] / budgets[0] >= 30 and len({p.values["seed"] for p in plans}) >= 3
    assert {p.values["regime"] for p in plans} == {"frozen", "finetune", "scratch", "adapter_only"}
    assert len({p.values["backbone"] for p in plans}) == 2 and len(plans) == 2 * 4 * 3 * len(budgets) * 3
    cfgs = [resolve_config(p, str(path)) for p in plans[:: len(budgets) * 3]]
    assert all(c.backbone.endswith("-physical") and c.layers == "last" and c.standardize for c in cfgs)
    assert "tracking-w128-f1.0-physical-finetune-80-s0" in {p.name for p in plans}
