"""The check before submission: dataset, splits, batch over ranks; one line per problem, nothing submitted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from launch.precheck import check_plans, format_problems, gpu_hours, shared_sources, trained_elsewhere
from launch.spec import expand_runs, load_spec
from launch.sweep import main

REPO = Path(__file__).resolve().parents[2]


def _dataset(root: Path, splits: dict[str, int]) -> Path:
    root.mkdir(parents=True)
    manifest = {"splits": {s: {"n_events": n, "shards": []} for s, n in splits.items()}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _spec(tmp_path: Path, dataset: Path, **extra) -> Path:
    data = {
        "name": "s",
        "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"),
        "runs_dir": str(tmp_path / "runs"),
        "overrides": {
            "data.dataset_dir": str(dataset),
            "data.simulate_if_missing.enabled": False,
            "data.train_split": "pretrain",
            "data.val_events": 8,
        },  # fmt: skip
        "axes": {"seed": [0, 1]},
        "resources": {"default": {"tasks_per_node": 1, "hours": 0.5}},
        **extra,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _problems(path: Path) -> list[str]:
    spec, base, site = load_spec(path)
    return format_problems(check_plans(expand_runs(spec, base, site, str(path)), str(path)))


def test_a_dataset_with_the_splits_passes(tmp_path: Path) -> None:
    path = _spec(tmp_path, _dataset(tmp_path / "d", {"pretrain": 100, "val": 8}))
    assert _problems(path) == []


def test_missing_split_and_short_val_split_are_one_line_each_for_all_runs(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "d", {"train": 100, "val": 4})
    lines = _problems(_spec(tmp_path, dataset))
    assert len(lines) == 2, lines
    assert lines[0].startswith("seed0, seed1: data.train_split / data.val_split: no split")
    assert "'pretrain'" in lines[0] and "(has train, val)" in lines[0]
    assert "split 'val' of" in lines[1] and "has 4 events, the run needs 8" in lines[1]


def test_missing_dataset_names_the_command_that_creates_it(tmp_path: Path) -> None:
    (line,) = _problems(_spec(tmp_path, tmp_path / "absent"))
    assert f"data.dataset_dir={tmp_path / 'absent'}: no manifest.json there" in line
    assert "python -m scaling.data import-tpcpp SRC --out" in line


def test_a_batch_that_does_not_split_over_the_ranks_names_a_micro_batch_that_does(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "d", {"pretrain": 100, "val": 8})
    path = _spec(tmp_path, dataset, resources={"default": {"tasks_per_node": 2, "hours": 0.5}},
                 overrides={"data.dataset_dir": str(dataset), "data.train_split": "pretrain",
                            "budget.global_batch_events": 12, "budget.micro_batch_events": 4})  # fmt: skip
    (line,) = _problems(path)
    assert "global_batch_events=12 is not a multiple of budget.micro_batch_events (4) x 2 ranks" in line
    assert "set budget.micro_batch_events=3" in line


def test_launch_with_problems_submits_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _spec(tmp_path, tmp_path / "absent")
    assert main([str(path), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert "problem: seed0, seed1: data.dataset_dir=" in err and "nothing submitted" in err
    assert not (tmp_path / "runs").exists()  # no run folder, no status, no job
    assert main([str(path), "--dry-run"]) == 0  # planning still works, and lists the same problem
    assert "problem: seed0, seed1" in capsys.readouterr().out


def test_gpu_hours_of_the_paper_plan() -> None:
    path = REPO / "sweeps/model_scaling.yaml"
    spec, base, site = load_spec(path)
    table_1 = 10 + 12 + 4 * 20 + 8 * 32 + 24 * 50 + 64 * 72  # GPUs x hours of m1-m6
    assert gpu_hours(expand_runs(spec, base, site, str(path))) == table_1


def test_a_spec_that_retrains_another_sweeps_runs_is_refused(tmp_path: Path) -> None:
    """compute_scaling.yaml was model_scaling.yaml under another name: 6 200 GPU-hours spent twice."""
    text = (REPO / "sweeps/model_scaling.yaml").read_text().replace("../scaling", str(REPO / "scaling"))
    (tmp_path / "model_scaling.yaml").write_text(text)
    copy = tmp_path / "compute_scaling.yaml"
    copy.write_text(text.replace("name: model_scaling", "name: compute_scaling").replace(
        "\noverrides:\n", "\noverrides:\n  - set: {logging.interval: 50}\n"))  # fmt: skip
    spec, base, site = load_spec(copy)
    plans = expand_runs(spec, base, site, str(copy))
    lines = format_problems(trained_elsewhere(copy, plans, spec.config_class))
    assert len(lines) == 6 and lines[0].startswith("m1_steps50000: sweep model_scaling (")
    assert "trains the same config as its run m1_steps50000" in lines[0]
    different = copy.read_text().replace(
        "logging.interval: 50}", "logging.interval: 50, optimizer.lr: 1.0e-4}"
    )
    copy.write_text(different)  # another learning rate: another model, not refused
    spec, base, site = load_spec(copy)
    assert trained_elsewhere(copy, expand_runs(spec, base, site, str(copy)), spec.config_class) == []


def test_the_paper_sweeps_train_nothing_twice() -> None:
    for path in sorted((REPO / "sweeps").glob("*.yaml")):
        if "downstream" in path.name:
            continue
        spec, base, site = load_spec(path)
        plans = expand_runs(spec, base, site, str(path))
        assert trained_elsewhere(path, plans, spec.config_class) == [], path
        assert shared_sources(path, plans, spec.config_class)[1] == [], path  # shared runs train the same
