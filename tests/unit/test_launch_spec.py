"""Sweep specs: expansion, names, validation errors naming key and file, resources vs site, time chaining."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launch.sites import SiteConfig, load_site
from launch.spec import axis_points, expand_runs, load_spec, resolve_config, run_name, time_plan
from scaling.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write_spec(tmp_path: Path, **spec) -> Path:
    data = {"name": "s", "base": str(REPO / "scaling/train/configs/tiny_cpu.yaml"), **spec}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_times_zip_in_order() -> None:
    points = axis_points(
        {
            "grid": {"model": ["m1", "m2"], "seed": [0, 1]},
            "zip": {"optimizer.lr": [1e-3, 2e-3], "budget.steps": [10, 20]},
        }
    )
    assert len(points) == 8
    assert points[0] == {"model.name": "m1", "seed": 0, "optimizer.lr": 1e-3, "budget.steps": 10}
    assert points[1]["optimizer.lr"] == 2e-3 and points[1]["budget.steps"] == 20
    assert points[-1]["model.name"] == "m2" and points[-1]["seed"] == 1


def test_run_names_readable_and_unique() -> None:
    assert run_name({"model.name": "m3", "optimizer.lr": 0.0002, "seed": 1}) == "m3_lr0.0002_seed1"
    assert run_name({"a.x": 1, "b.x": 2}) == "a-x1_b-x2"


def test_expand_writes_values_and_identity(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        overrides={"budget.steps": 7},
        axes={"grid": {"model.width": [16, 32]}, "zip": {"seed": [3]}},
        resources={"default": {"hours": 0.5}},
    )
    spec, base, site = load_spec(path)
    plans = expand_runs(spec, base, site, str(path))
    assert [p.name for p in plans] == ["width16_seed3", "width32_seed3"]
    cfg = resolve_config(plans[1], str(path))
    assert cfg.model.width == 32 and cfg.seed == 3 and cfg.budget.steps == 7
    assert cfg.run == {"name": "width32_seed3", "sweep": "s"}
    assert plans[0].config["model"]["width"] == 16  # runs do not share mutable trees


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"axes": {"grid": {"optimizer.lrr": [1e-3]}}}, "axes.grid.optimizer.lrr"),
        ({"axes": {"grid": {"seed": []}}}, "axes.grid.seed: must be a non-empty list"),
        ({"axes": {"zip": {"seed": [1, 2], "optimizer.lr": [1e-3]}}}, "equal lengths"),
        ({"axes": {"cube": {"seed": [1]}}}, "axes.cube: 'cube' is not a TrainConfig key"),
        ({"overrides": {"model.widht": 3}}, "overrides.model.widht"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"base": "missing.yaml"}, "base: missing.yaml not found"),
        ({"site": "nowhere"}, "site 'nowhere'"),
    ],
)
def test_bad_specs_name_key_and_file(tmp_path: Path, spec: dict, needle: str) -> None:
    path = write_spec(tmp_path, **spec)
    with pytest.raises(ConfigError) as err:
        spec_obj, base, site = load_spec(path)
        expand_runs(spec_obj, base, site, str(path))
    assert needle in str(err.value) and str(path) in str(err.value)


def test_resource_request_beyond_site(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        site="perlmutter-gpu",
        axes={"grid": {"model": ["m1"]}},
        resources={"default": {"gpus_per_node": 4}, "m1": {"gpus_per_node": 8}},
    )
    spec, base, site = load_spec(path)
    with pytest.raises(ConfigError, match=r"run m1: gpus_per_node=8 > site gpus_per_node=4"):
        expand_runs(spec, base, site, str(path))


def test_bad_value_caught_before_submission(tmp_path: Path) -> None:
    path = write_spec(tmp_path, axes={"grid": {"serialization": ["raster", "zigzag"]}})
    spec, base, site = load_spec(path)
    plans = expand_runs(spec, base, site, str(path))
    with pytest.raises(ConfigError, match="serialization='zigzag'"):
        resolve_config(plans[1], str(path))


def test_time_plan_chains_beyond_site_cap() -> None:
    site = SiteConfig(max_time_min=2880)
    assert time_plan(72, site) == (2880, 2)  # m6: 72 h on a 48 h site -> two allocations
    assert time_plan(10, site) == (600, 1)


def test_shipped_sites_and_sweeps_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an empty runs/: downstream specs expand to their literal backbones only
    for name in ("local", "perlmutter-gpu", "generic-h100"):
        assert load_site(name).name == name
    for path in sorted((REPO / "sweeps").glob("*.yaml")):
        spec, base, site = load_spec(path)
        if "runs_of" in str(spec.axes) and "plus" not in str(spec.axes):  # every backbone from the dependency
            with pytest.raises(ConfigError, match="has no runs under runs.*; launch it first"):
                expand_runs(spec, base, site, str(path))
            continue
        plans = expand_runs(spec, base, site, str(path))
        assert plans, path
        for plan in plans:
            resolve_config(plan, str(path))


def test_paper_sweeps_run_the_papers_recipe_without_tiny_values() -> None:
    """model_scaling, data_scaling and ablations take scaling/train/configs/paper.yaml: nothing of the tiny
    CPU config (its 16-event shuffle buffer, 4-event batches, k = 4) reaches a paper run."""
    for name in ("model_scaling", "data_scaling", "ablations"):
        path = REPO / f"sweeps/{name}.yaml"
        spec, base, site = load_spec(path)
        assert spec.base == "../scaling/train/configs/paper.yaml", name
        for plan in expand_runs(spec, base, site, str(path)):
            cfg = resolve_config(plan, str(path))
            assert cfg.data.shuffle_buffer == 1024 and cfg.data.train_split == "pretrain", plan.name
            assert cfg.budget.global_batch_events in (256, 264) and cfg.optimizer.lr == 2e-4, plan.name
            assert (cfg.schedule.name, cfg.schedule.warmup_steps) == ("cosine", 10000), plan.name
            assert cfg.optimizer.grad_clip == 0.1 and cfg.data.val_events == 1024, plan.name
            assert cfg.model.n_freq == 10 and cfg.model.n_layers == 12 and cfg.logging.interval == 10
            assert cfg.objective.k == 30 or name == "ablations", plan.name  # ablations vary k
