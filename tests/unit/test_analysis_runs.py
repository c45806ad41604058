"""Reading run directories and CSV tables; the compute frontier's lower envelope."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.frontier import compute_frontier, envelope
from analysis.runs import Curve, RunRecord, load_source, load_sweep, read_metrics
from tests.synthetic import write_sweep


def test_sweep_reader_keeps_completed_runs_and_lists_the_rest(tmp_path: Path) -> None:
    write_sweep(
        tmp_path, widths=[64, 128, 256], steps=100, extra_states={"late": "preempted", "bad": "failed"}
    )
    (tmp_path / "w256" / "summary.json").unlink()
    sweep = load_sweep(tmp_path)
    assert [r.name for r in sweep.completed] == ["w128", "w64"]
    assert dict(sweep.excluded) == {
        "bad": "state failed",
        "late": "state preempted",
        "w256": "completed but summary.json is missing",
    }
    assert {r.name for r in sweep.partial} == {"bad", "late"}
    run = next(r for r in sweep.completed if r.name == "w64")
    assert run.width == 64 and run.lr == pytest.approx(2e-4) and run.fraction == 1.0
    assert run.final_val_loss == pytest.approx(run.val.loss[-1])
    assert np.all(np.diff(run.val.flops) > 0)
    late = next(r for r in sweep.partial if r.name == "late")
    assert late.flops == late.val.flops[-1] < run.flops  # stopped half way


def test_torn_metrics_line_is_skipped(tmp_path: Path) -> None:
    rows = [
        {
            "kind": "val",
            "step": s,
            "events": s,
            "tokens": s * 10,
            "flops": s * 100.0,
            "val_loss": 3.0 / s,
            "wall_s": 1.0,
        }
        for s in (1, 2, 3)
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "val", "step": 4, "val_lo'
    (tmp_path / "metrics.jsonl").write_text(text)
    val, train = read_metrics(tmp_path / "metrics.jsonl")
    assert train is None and val.step.tolist() == [1, 2, 3]


def test_bad_summary_names_the_file(tmp_path: Path) -> None:
    write_sweep(tmp_path, widths=[64], steps=50)
    (tmp_path / "w64" / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"w64/summary.json: not valid JSON"):
        load_sweep(tmp_path)


def test_csv_table_defaults_flops_and_groups_curves(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("run,params,tokens,loss\na,1e6,1e8,3.0\na,1e6,2e8,2.8\nb,4e6,1e8,2.7\n")
    sweep = load_source(path)
    assert sweep.notes == ["FLOPs not in the table: taken as 6 x params x tokens"]
    a = next(r for r in sweep.completed if r.name == "a")
    assert a.final_val_loss == 2.8 and a.flops == pytest.approx(6 * 1e6 * 2e8)
    assert a.val.flops.tolist() == pytest.approx([6e14, 1.2e15])
    with pytest.raises(ValueError, match="missing column.*loss"):
        (tmp_path / "u.csv").write_text("params,tokens\n1,2\n")
        load_source(tmp_path / "u.csv")


def _run(name: str, flops: list[float], loss: list[float], state: str = "completed") -> RunRecord:
    f = np.array(flops)
    return RunRecord(
        name=name,
        state=state,
        model=name,
        params_non_embedding=1.0,
        val=Curve(step=np.arange(f.size, dtype=float), tokens=f, events=f, flops=f, loss=np.array(loss)),
    )


def test_frontier_is_the_lower_envelope_of_best_so_far_curves() -> None:
    small = _run("small", [1, 2, 4, 8], [5.0, 4.0, 3.5, 3.6])  # last point worse: best-so-far keeps 3.5
    big = _run("big", [2, 4, 8, 16], [6.0, 3.8, 3.0, 2.5], state="preempted")
    front = compute_frontier([small, big], n_grid=5)
    assert front.budgets[0] == 1 and front.budgets[-1] == 16
    loss, idx = envelope(front.curves, np.array([1.0, 2.0, 4.0, 8.0, 16.0]))
    assert loss.tolist() == [5.0, 4.0, 3.5, 3.0, 2.5]
    assert [front.run_names[i] for i in idx] == ["small", "small", "small", "big", "big"]
    segments = front.segments()
    assert [s["run"] for s in segments] == ["small", "big"]
    assert segments[1]["flops_from"] == pytest.approx(8.0)


def test_data_law_from_a_data_scaling_sweep(tmp_path: Path) -> None:
    from analysis.fit import fit_source
    from tests.synthetic import TrueLaw, write_run

    rng, law = np.random.default_rng(0), TrueLaw()
    for i, steps in enumerate([100, 200, 400, 800, 1600, 3200]):
        write_run(
            tmp_path / f"d{i}",
            width=256,
            steps=steps,
            tokens_per_step=1e6,
            law=law,
            noise=1e-4,
            rng=rng,
            fraction=steps / 3200,
        )
    sweep = load_sweep(tmp_path)
    assert sorted(r.fraction for r in sweep.completed) == pytest.approx(
        [steps / 3200 for steps in (100, 200, 400, 800, 1600, 3200)]
    )
    fit = fit_source(sweep, "data", n_boot=50)
    assert fit.irreducible and fit.reliable
    assert fit.params["alpha"] == pytest.approx(law.beta, rel=0.02)
    events = fit_source(sweep, "data", x_data="events", n_boot=0)
    assert events.x == "events" and events.params["alpha"] == pytest.approx(law.beta, rel=0.02)


def test_reevaluated_ratios_supersede_the_logged_ones(tmp_path: Path) -> None:
    write_sweep(tmp_path, widths=[64], steps=100)
    run_dir = tmp_path / "w64"
    logged = load_sweep(tmp_path).completed[0]
    steps = logged.val.step.astype(int).tolist()
    rows = [{"step": s, "val_loss": 1.0, "val_loss_ratio": 0.9 - 0.1 * i} for i, s in enumerate(steps[-2:])]
    (run_dir / "ratios.json").write_text(json.dumps({"rows": rows}))
    run = load_sweep(tmp_path).completed[0]
    assert run.ratio_source == "ratios.json"
    assert run.final_val_loss_ratio == pytest.approx(0.9 - 0.1 * (len(rows) - 1))
    assert run.best_val_loss_ratio == pytest.approx(min(r["val_loss_ratio"] for r in rows))
    assert run.val_ratio.step.tolist() == steps[-2:]
    assert run.val_ratio.tokens.tolist() == logged.val.tokens[-2:].tolist()  # from the val curve's steps
    (run_dir / "ratios.json").write_text(json.dumps({"rows": [{"step": 1}]}))
    with pytest.raises(ValueError, match=r"w64/ratios.json: no rows with val_loss_ratio; rerun"):
        load_sweep(tmp_path)


def test_a_law_leaves_out_runs_of_another_target_setting(tmp_path: Path) -> None:
    """A run whose loss is in other units (the paper's normalised k-NNN beside the cm metric) must not enter a
    law: its tiny loss would pass for the best model of its size."""
    import yaml

    from analysis.fit import fit_source

    write_sweep(tmp_path, widths=[64, 128, 256, 512], steps=100)
    for run in ("w64", "w128", "w256", "w512"):
        cfg = yaml.safe_load((tmp_path / run / "config.yaml").read_text())
        cfg["objective"] = {"name": "knnn", "metric": "physical", "target_scaling": "robust"}
        (tmp_path / run / "config.yaml").write_text(yaml.safe_dump(cfg))
    other = tmp_path / "w512-normalised"
    shutil.copytree(tmp_path / "w512", other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["objective"] = {"name": "knnn", "metric": "normalised", "target_scaling": "none"}
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(
        json.dumps({**summary, "final_val_loss": 1e-3, "best_val_loss": 1e-3})
    )
    fit = fit_source(load_sweep(tmp_path), "model", n_boot=0)
    assert sorted(p["name"] for p in fit.points) == ["w128", "w256", "w512", "w64"]
    assert {"name": "w512-normalised", "reason": "another target setting (name=knnn metric=normalised "
            "target_scaling=none)"} in fit.excluded  # fmt: skip
    assert any("another target setting" in n for n in fit.notes)
