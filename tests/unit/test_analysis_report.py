"""The fit CLI and the study report on small synthetic sweeps (the quickstart's shape: 4 widths)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from analysis import fit as fit_cli
from analysis import report
from tests.synthetic import TrueLaw, write_sweep


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    return write_sweep(
        tmp_path / "quickstart", widths=[64, 128, 256, 512], steps=300, extra_states={"stopped": "preempted"}
    )


def test_report_on_a_quickstart_sweep(
    quickstart: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    hook = types.ModuleType("analysis.downstream.report")
    hook.report_sections = lambda sweep_dir, out_dir: calls.append(sweep_dir) or ["## Downstream\n\nhook ran"]
    monkeypatch.setitem(sys.modules, "analysis.downstream.report", hook)
    out = tmp_path / "report"
    assert report.main([str(quickstart), "--out", str(out), "--bootstrap", "200"]) == 0
    md = (out / "report.md").read_text()
    for needle in (
        "| w512 |",
        "stopped: state preempted",
        "### model law",
        "### compute law",
        "![model law](law_model.png)",
        "hook ran",
    ):
        assert needle in md, needle
    assert "### data law" not in md and "### joint law" not in md  # one token count: not supported
    assert "Beside the paper" not in md  # widths 64-512 of custom models are not the paper's m1-m4
    assert calls == [quickstart]
    for stem in ("law_model", "law_compute", "training_curves"):
        assert (out / f"{stem}.png").stat().st_size > 5000 and (out / f"{stem}.pdf").exists()
    html = (out / "report.html").read_text()
    assert "<table>" in html and '<img alt="model law" src="law_model.png"' in html
    fits = json.loads((out / "fits.json").read_text())
    assert set(fits) == {"model", "compute"} and fits["model"]["n_points"] == 4


def test_fit_cli_json_and_plot(quickstart: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = fit_cli.main(
        [
            str(quickstart),
            "--law",
            "model",
            "--bootstrap",
            "100",
            "--json",
            str(tmp_path / "f.json"),
            "--out",
            str(tmp_path / "o"),
            "--irreducible",
            "no",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "excluded: stopped (state preempted)" in text
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["law"] == "model" and set(data["params"]) == {"A", "alpha"} and data["converged"] is True
    assert (
        data["n_points"] == 4
        and data["ci95"]["alpha"][0] < data["params"]["alpha"] < data["ci95"]["alpha"][1]
    )
    assert (tmp_path / "o" / "law_model.png").exists()


def test_fit_cli_joint_on_a_csv_without_flops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng, law = np.random.default_rng(0), TrueLaw()
    rows = ["params,tokens,loss"]
    for n in np.geomspace(1e6, 1e9, 6):
        for d in np.geomspace(1e8, 1e11, 6):
            rows.append(f"{n:.6g},{d:.6g},{law.loss(n, d) * np.exp(rng.normal(0, 1e-4)):.8g}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    code = fit_cli.main(
        [
            str(tmp_path / "t.csv"),
            "--law",
            "joint",
            "--bootstrap",
            "20",
            "--json",
            str(tmp_path / "j.json"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "note: FLOPs not in the table: taken as 6 x params x tokens" in out
    data = json.loads((tmp_path / "j.json").read_text())
    assert set(data["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert data["params"]["alpha"] == pytest.approx(law.alpha, rel=0.02)
    assert data["params"]["beta"] == pytest.approx(law.beta, rel=0.02)
    assert data["derived"]["a"] == pytest.approx(law.beta / (law.alpha + law.beta), rel=0.02)
    assert (tmp_path / "o" / "law_joint.png").stat().st_size > 5000
    assert (tmp_path / "o" / "fit_joint.json").exists()


def test_fit_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.csv").write_text("params,tokens,loss\n1e6,1e8,3.0\n2e6,1e8,nan\n4e6,1e8,2.5\n")
    assert fit_cli.main([str(tmp_path / "t.csv"), "--law", "model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "final_val_loss is nan" in err
    assert fit_cli.main([str(tmp_path / "nowhere"), "--law", "model"]) == 2
    assert "no such sweep folder" in capsys.readouterr().err


def test_unreliable_fit_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ["params,tokens,loss"] + [
        f"{n:g},1e8,{3.0 + 0.01 * i}" for i, n in enumerate([1e6, 2e6, 4e6, 8e6])
    ]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")  # loss rising with size: alpha at its bound 0
    code = fit_cli.main(
        [str(tmp_path / "t.csv"), "--law", "model", "--bootstrap", "10", "--irreducible", "yes"]
    )
    out = capsys.readouterr().out
    assert code == 1 and "WARNING" in out and "not estimates" in out


def test_report_on_an_lr_transfer_sweep(tmp_path: Path) -> None:
    from tests.synthetic import write_lr_sweep

    lrs = [2.0**k * 1e-4 for k in range(-2, 3)]
    write_lr_sweep(tmp_path / "lr", widths=[64, 128, 256], lrs=lrs, lr_opt={64: 1e-4, 128: 1e-4, 256: 1e-4})
    md, fits = report.build_report(tmp_path / "lr", tmp_path / "out", n_boot=50)
    assert "## Learning-rate transfer" in md and "is stable across widths" in md
    assert (tmp_path / "out" / "lr_transfer.png").exists()
    assert fits["model"]["n_points"] == 3  # one point per width: the best learning rate
    assert len([e for e in fits["model"]["excluded"] if "same size" in e["reason"]]) == 12
    best = {p["name"] for p in fits["model"]["points"]}
    assert best == {"w64_lr1.00e-04", "w128_lr1.00e-04", "w256_lr1.00e-04"}


def test_beside_the_paper_pairs_runs_of_the_paper_family_by_name_not_width(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "s", widths=[64, 128], steps=300)
    # the quickstart's 2-layer width-64 model is not the paper's 12-layer m1, whatever its width
    assert report.paper_table(report.load_sweep(sweep)) is None
    summary = sweep / "w64" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "model": "m1"}))
    table = report.paper_table(report.load_sweep(sweep))
    assert table is not None and "| m1 | 64 | 0.34M |" in table and "| m2 | 128 | 1.3M | – |" in table


def test_joint_law_from_runs_uses_every_budget_checkpoint_and_several_sweeps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--law joint` on a model-scaling sweep once said "4 points for a law with 5 parameters" and suggested
    --irreducible no, which changed nothing: one final loss per run, one sweep folder per call."""
    law = TrueLaw()
    # four runs, as in the quickstart: a bootstrap insisting on every run would return the sample itself
    sizes = write_sweep(tmp_path / "sizes", widths=[64, 256, 512], steps=300, law=law, noise=0.002)
    longer = write_sweep(tmp_path / "longer", widths=[256], steps=1200, law=law, noise=0.002, seed=1)
    out = tmp_path / "fit.json"
    code = fit_cli.main([str(sizes), str(longer), "--law", "joint", "--bootstrap", "200", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    fit = json.loads(out.read_text())
    assert fit["n_points"] == 12 and "12 points from the budget checkpoints of 4 runs" in printed
    assert {p["name"] for p in fit["points"]} >= {"sizes/w64@75", "longer/w256@1200"}
    for name in ("alpha", "beta"):
        lo, hi = fit["ci95"][name]
        # a real interval: resampling runs (their points together) moves the estimate
        assert lo < fit["params"][name] < hi and hi - lo > 0.01 * fit["params"][name], (name, fit["ci95"])
    assert abs(fit["params"]["alpha"] - law.alpha) < 0.1 and abs(fit["params"]["beta"] - law.beta) < 0.1


def test_joint_law_with_too_few_points_names_a_fix_that_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write_sweep(tmp_path / "s", widths=[64, 128], steps=300)
    for run in (p for p in sweep.iterdir() if p.is_dir()):  # no budget checkpoints: one point a run
        summary = run / "summary.json"
        summary.write_text(json.dumps({**json.loads(summary.read_text()), "budget_checkpoints": []}))
    assert fit_cli.main([str(sweep), "--law", "joint", "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "2 (N, D) point(s) from 2 model size(s) and 1 token count(s)" in err and "--irreducible" not in err
    assert "budget.checkpoint_fractions" in err and "several sweep folders in one call" in err
