"""Rendered sbatch script and submitit parameters for the paper's m4 on a Perlmutter-like site (golden)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from launch.executor import slurm_parameters
from launch.sbatch import render_sbatch, sbatch_options, site_options
from launch.spec import expand_runs, load_spec

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests/golden/launch_m4_perlmutter.sbatch"


def m4_plan():
    spec, base, site = load_spec(REPO / "sweeps/model_scaling.yaml")
    plans = expand_runs(spec, base, site, "model_scaling.yaml")
    return next(p for p in plans if p.values["model.name"] == "m4"), site


def test_sbatch_matches_golden() -> None:
    plan, site = m4_plan()
    text = render_sbatch(plan, site, "/scratch/runs/model_scaling/" + plan.name)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=4" in text
    assert "#SBATCH --gpus-per-node=4" in text and "#SBATCH --constraint=gpu" in text


def test_submitit_parameters_one_task_per_gpu() -> None:
    plan, site = m4_plan()
    params = slurm_parameters(plan, site)
    assert params["nodes"] == 2 and params["tasks_per_node"] == 4 and params["gpus_per_node"] == 4
    assert params["timeout_min"] == 32 * 60 and params["slurm_qos"] == "regular"
    assert params["slurm_additional_parameters"] == {"requeue": True, "exclusive": True}


def test_script_and_submitit_take_the_same_site_options() -> None:
    """One list of site options: what the rendered script says, submitit is asked for too."""
    plan, site = m4_plan()
    site = dataclasses.replace(site, partition="gpu_p", account="m1234", extra_sbatch=["--mail-type=END"])
    assert sbatch_options(plan, site) == [
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu_p",
        "#SBATCH --account=m1234",
        "#SBATCH --qos=regular",
        "#SBATCH --constraint=gpu",
        "#SBATCH --exclusive",
        "#SBATCH --mail-type=END",
    ]
    params = slurm_parameters(plan, site)
    assert params["gpus_per_node"] == 4
    assert (params["slurm_partition"], params["slurm_account"]) == ("gpu_p", "m1234")
    assert params["slurm_additional_parameters"] == {"requeue": True, "exclusive": True, "mail_type": "END"}
    assert [o.key for o in site_options(plan, site) if o.extra] == ["mail-type"]
