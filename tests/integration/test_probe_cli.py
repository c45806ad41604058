"""A real pretraining run (2 steps, DeepSpeed on CPU) on simulated events -> `python -m analysis.probe`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scaling.data import simulator
from scaling.data.shards import write_dataset
from scaling.train.config import DataConfig
from tests.integration.test_downstream_cli import _events
from tests.integration.test_downstream_end_to_end import _run

pytestmark = pytest.mark.integration
TRAIN, VAL = DataConfig().train_split, DataConfig().val_split  # the split names the trainer reads


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sweep folder with one completed 2-step run on simulated events (track truth), and one bare folder."""
    root = tmp_path_factory.mktemp("probe")
    cfg = simulator.small_config()
    splits = {
        TRAIN: simulator.simulate_events(30, 0, cfg),
        VAL: simulator.simulate_events(12, 0, cfg, 30),
    }
    write_dataset(root / "data", splits, shard_events=16, provenance={"source": "test"})
    run_dir = root / "sweep" / "bb"
    res = _run("scaling.train", "--run-dir", str(run_dir), "scaling/train/configs/tiny_cpu.yaml",
               f"data.dataset_dir={root / 'data'}", "data.simulate_if_missing.enabled=false",
               "budget.steps=2", "checkpoint.interval=2", "budget.val_interval=2")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    pending = root / "sweep" / "not-started"  # a run that never checkpointed: not probed in the sweep
    pending.mkdir()
    shutil.copy(run_dir / "config.yaml", pending / "config.yaml")
    (pending / "status.json").write_text('{"state": "pending"}')
    # labelled events without a track table (no momenta, no charges), as TPCpp-10M publishes them
    write_dataset(root / "bare", {TRAIN: _events(12, 0), VAL: _events(6, 1)}, shard_events=8,
                  provenance={"source": "test"})  # fmt: skip
    return {"root": root, "run": run_dir, "sweep": root / "sweep", "bare": root / "bare"}


def test_probe_json_side_by_side_and_raw_inputs_recover_eta(run: dict[str, Path]) -> None:
    res = _run("analysis.probe", str(run["sweep"]), "--events", "30", "--eval-events", "12")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads((run["run"] / "probe.json").read_text())
    assert out["train_split"] == TRAIN and out["eval_split"] == VAL  # held-out events
    assert out["n_train_events"] == 30 and out["n_eval_events"] == 12 and out["skipped"] == {}
    assert out["features"] == {"backbone": "prenorm", "random_init": "prenorm", "raw": "inputs",
                               "backbone_final_norm": "final"}  # fmt: skip
    sources = {"backbone", "random_init", "raw", "backbone_final_norm"}
    regression = {
        "log_pt",
        "eta",
        "charge_sign",
        "next_hit_distance_cm",
        "next_hit_rdphi_dr",
        "next_hit_dz_dr",
    }
    assert set(out["results"]) == regression | {"pid", "noise"}
    for key in regression:
        assert set(out["results"][key]) == {"all", "non_noise"}
        for name in sources:
            assert -10 < out["results"][key]["non_noise"][name]["r2"] <= 1.0
    assert set(out["results"]["noise"]) == {"all"}
    pid = out["results"]["pid"]["non_noise"]
    assert set(pid) == sources | {"majority_class"}
    assert all(0 <= pid[s]["balanced_accuracy"] <= pid[s]["accuracy"] + 1 for s in sources)
    # the particle's eta is (up to the vertex spread) the point's eta, an input column: a linear read-out
    eta = out["results"]["eta"]
    assert eta["non_noise"]["raw"]["r2"] > 0.9 and eta["all"]["raw"]["r2"] > 0.5
    assert "| eta [η] | non-noise | R² |" in res.stdout and "random init" in res.stdout
    assert "ETA" in res.stderr  # progress lines
    assert not (run["sweep"] / "not-started" / "probe.json").exists()
    again = _run("analysis.probe", str(run["sweep"]), "--events", "30", "--eval-events", "12")
    assert again.returncode == 0 and "probe.json is up to date" in again.stdout
    report = _run(
        "analysis.report", str(run["sweep"]), "--out", str(run["root"] / "report"), "--bootstrap", "2"
    )
    assert report.returncode == 0, report.stderr[-2000:]
    md = (run["root"] / "report" / "report.md").read_text()
    assert "## Probes" in md and "### bb" in md and "| eta [η] | non-noise |" in md


def test_bad_input_is_one_line_and_missing_truth_is_skipped(run: dict[str, Path]) -> None:
    res = _run("analysis.probe", str(run["sweep"] / "not-started"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "no complete checkpoint" in res.stderr and "python -m scaling.train" in res.stderr
    res = _run("analysis.probe", str(run["root"] / "data"))
    assert res.returncode == 2 and "neither a run directory" in res.stderr
    res = _run("analysis.probe", str(run["run"]), "--eval-split", "nosuch", "--events", "6")
    have = ", ".join(sorted((TRAIN, VAL)))
    assert res.returncode == 2
    assert f"no split 'nosuch' for the probe's eval events (has {have})" in res.stderr
    res = _run("analysis.probe", str(run["run"]), "--dataset", str(run["root"] / "nowhere"))
    assert res.returncode == 2 and "pass --dataset" in res.stderr
    bare = _run("analysis.probe", str(run["run"]), "--dataset", str(run["bare"]), "--events", "12", "--force")
    assert bare.returncode == 0, bare.stderr[-2000:]
    out = json.loads((run["run"] / "probe.json").read_text())
    assert (
        set(out["skipped"]) == {"log_pt", "eta", "charge_sign"} and "track momenta" in out["skipped"]["eta"]
    )
    assert "next_hit_distance_cm" in out["results"] and "eta" not in out["results"]
    assert "probe target eta skipped" in bare.stderr
