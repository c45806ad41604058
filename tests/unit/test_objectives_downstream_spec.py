"""sweeps/objectives_downstream.yaml and its AdapterOnly reference over a stand-in of the objectives sweep
(the run folders sweeps/objectives.yaml names, as `runs_of` lists them): every backbone x {frozen, finetune} x
3 tasks x 2 budgets at the backbone's own seed, AdapterOnly x 3 seeds x 3 tasks x 2 budgets, every config
valid for DownstreamConfig; the objectives sweep probes its runs before the report."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from launch import sweep as cli
from launch.spec import expand_runs, load_spec, resolve_config

REPO = Path(__file__).resolve().parents[2]


def _objective_runs() -> list[str]:
    path = REPO / "sweeps" / "objectives.yaml"
    spec, base, site = load_spec(path)
    return [p.name for p in expand_runs(spec, base, site, str(path))]


def _stand_in(runs: Path, names: list[str]) -> Path:
    """runs/objectives as the launcher leaves it once every run completed: sweep.json + status.json each."""
    folder = runs / "objectives"
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "status.json").write_text(json.dumps({"state": "completed"}))
    (folder / "sweep.json").write_text(json.dumps({"runs": {n: {} for n in names}}))
    return folder


def _spec_here(tmp_path: Path, file: str, folder: Path) -> Path:
    """The shipped spec with runs/objectives (its runs_dir, runs_of, depends_on, paths) moved to `folder`."""
    text = (REPO / "sweeps" / file).read_text()
    assert "runs/objectives" in text
    data = yaml.safe_load(text.replace("runs/objectives", str(folder)))
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data))
    return path


def _expand(path: Path):
    spec, base, site = load_spec(path)
    return spec, expand_runs(spec, base, site, str(path))


def test_every_backbone_both_regimes_every_task_two_budgets_at_its_own_seed(tmp_path: Path) -> None:
    names = _objective_runs()
    assert len(names) == 21  # 7 objective variants x 3 seeds
    shipped = yaml.safe_load((REPO / "sweeps" / "objectives_downstream.yaml").read_text())
    assert shipped["axes"]["backbone"]["runs_of"] == shipped["depends_on"] == "runs/objectives"
    assert shipped["runs_dir"] == "runs/objectives"  # below the sweep: its report finds the adapters
    folder = _stand_in(tmp_path / "runs", names)
    path = _spec_here(tmp_path, "objectives_downstream.yaml", folder)
    spec, plans = _expand(path)
    assert spec.depends_on == str(folder)
    assert len(plans) == 21 * 2 * 3 * 2 == 252
    assert {p.values["regime"] for p in plans} == {"frozen", "finetune"}
    assert {p.values["task"] for p in plans} == {"pid", "noise", "tracking"}
    assert {p.values["n_train_events"] for p in plans} == {25, 800}
    assert {Path(p.values["backbone"]).name for p in plans} == set(names)
    for plan in plans:
        cfg = resolve_config(plan, str(path))
        backbone = Path(cfg.backbone).name
        assert cfg.seed == int(backbone.rsplit("-s", 1)[1]), plan.name  # the backbone's own seed
        assert cfg.dataset == "data/cpu_study" and cfg.train_split == "train" and cfg.eval_split == "test"
        assert cfg.layers == "last" and cfg.standardize
        assert cfg.adapter.loss == ("weighted_ce" if cfg.task in ("pid", "noise") else "ce"), plan.name
    assert "tracking-supervised-tokens-causal-s2-finetune-800" in {p.name for p in plans}


def test_adapter_only_reference_three_seeds_same_budgets(tmp_path: Path) -> None:
    names = _objective_runs()
    folder = _stand_in(tmp_path / "runs", names)
    path = _spec_here(tmp_path, "objectives_downstream_reference.yaml", folder)
    _, plans = _expand(path)
    assert len(plans) == 3 * 3 * 2
    cfgs = [resolve_config(p, str(path)) for p in plans]
    assert {(c.seed, c.task, c.n_train_events) for c in cfgs} == {
        (s, t, b) for s in range(3) for t in ("pid", "noise", "tracking") for b in (25, 800)
    }
    assert all(c.regime == "adapter_only" for c in cfgs)
    # each seed reads a k-NNN backbone of the same seed for its width and input options only: one that exists
    assert all(Path(c.backbone).name in names and Path(c.backbone).name.endswith(f"-s{c.seed}") for c in cfgs)
    assert len({p.name for p in plans}) == len(plans)


def test_dry_run_lists_every_run(tmp_path: Path, capsys) -> None:
    folder = _stand_in(tmp_path / "runs", _objective_runs())
    path = _spec_here(tmp_path, "objectives_downstream.yaml", folder)
    assert cli.main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "252 runs" in out and "pid-knnn-tokens-causal-s0-frozen-25" in out


def test_objectives_sweep_probes_before_its_report() -> None:
    post = yaml.safe_load((REPO / "sweeps" / "objectives.yaml").read_text())["post"]
    assert post[0].startswith("python -m analysis.probe {runs_dir}/{name}/")
    assert post[-1].startswith("python -m analysis.report {runs_dir}/{name}/")
