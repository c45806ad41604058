"""The report's objective table (analysis/objectives_report.py) on fake objective-comparison sweeps: seeds
pooled into mean ± sample std, probes beside random init, downstream per task / regime / budget, the
supervised row marked, the loss ratio against width, and the section only where objectives differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import report
from analysis.objectives_report import objectives_section
from analysis.runs import load_sweep
from tests.synthetic import write_sweep
from tests.synthetic_objectives import write_downstream_run, write_objective_run


def _row(md: list[str] | str, start: str) -> list[str]:
    """The cells of the one table row whose first cell starts with `start`."""
    lines = md if isinstance(md, list) else md.splitlines()
    rows = [ln for ln in "\n".join(lines).splitlines() if ln.startswith(f"| {start}")]
    assert len(rows) == 1, (start, rows)
    return [c.strip() for c in rows[0].strip("|").split("|")]


def _header(md: list[str], first: str) -> list[str]:
    heads = [ln for ln in "\n".join(md).splitlines() if ln.startswith(f"| {first} |")]
    return [c.strip() for c in heads[0].strip("|").split("|")]


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """knnn x 3 seeds (ratios 0.8 / 0.9 / 1.0, log pT R² 0.2 / 0.4 / 0.6, random init 0.1 each), bidirectional
    mpm x 2 seeds (ratios 0.5 / 0.7), supervised x 3 seeds; one width."""
    sweep = tmp_path / "objectives"
    for seed, ratio, r2 in ((0, 0.8, 0.2), (1, 0.9, 0.4), (2, 1.0, 0.6)):
        probe = {
            ("log_pt", "backbone"): r2,
            ("log_pt", "random_init"): 0.1,
            ("pid", "backbone"): 0.3 + seed / 10,
            ("noise", "backbone"): 0.9,
        }
        write_objective_run(
            sweep, f"knnn-tokens-causal-s{seed}", objective="knnn", seed=seed, ratio=ratio, probe=probe
        )
    for seed, ratio in ((0, 0.5), (1, 0.7)):
        write_objective_run(
            sweep,
            f"mpm-tokens-bidirectional-s{seed}",
            objective="mpm",
            direction="bidirectional",
            seed=seed,
            ratio=ratio,
            probe={("log_pt", "backbone"): 0.5},
        )
    for seed in range(3):
        write_objective_run(
            sweep,
            f"supervised-tokens-causal-s{seed}",
            objective="supervised",
            seed=seed,
            ratio=0.3,
            probe={("log_pt", "backbone"): 0.7},
        )
    return sweep


def test_seeds_pool_into_mean_and_sample_std_beside_random_init(sweep_dir: Path) -> None:
    md = objectives_section(load_sweep(sweep_dir), sweep_dir)
    head = _header(md, "objective")
    knnn = dict(zip(head, _row(md, "knnn"), strict=True))
    # sample std (n - 1): 0.100, not the population's 0.082
    assert knnn["val_loss_ratio"] == "0.900 ± 0.100" and knnn["seeds"] == "3" and knnn["width"] == "64"
    assert knnn["log pT R²"] == "0.400 ± 0.200" and knnn["log pT R², random init"] == "0.100 ± 0.000"
    assert knnn["PID bal. acc."] == "0.400 ± 0.100"  # non-noise points (all points read 0.05 higher)
    assert knnn["noise bal. acc."] == "0.900 ± 0.000"  # noise: all points, its only subset
    assert knnn["direction"] == "causal"
    mpm = dict(zip(head, _row(md, "mpm (tokens)"), strict=True))
    assert mpm["direction"] == "bidirectional" and mpm["seeds"] == "2"
    assert mpm["val_loss_ratio"] == "0.600 ± 0.141" and mpm["log pT R²"] == "0.500 ± 0.000"
    assert "η R²" in head  # a target every probe.json has, even at 0
    table = "\n".join(md).split("\n\n| objective |")[1].split("\n\n")[0]  # the first table
    rows = ["| objective |" + table.splitlines()[0], *table.splitlines()[1:]]
    assert [r.split("|")[1].strip().split(" ")[0] for r in rows[1:]] == ["---", "knnn", "mpm", "supervised"]


def test_supervised_row_is_marked_as_using_labels(sweep_dir: Path) -> None:
    md = objectives_section(load_sweep(sweep_dir), sweep_dir)
    assert _row(md, "supervised")[0] == "supervised **uses labels**"
    assert "uses labels" not in _row(md, "knnn")[0] and "uses labels" not in _row(md, "mpm")[0]


def test_one_width_is_said_in_one_line_several_give_a_table(sweep_dir: Path) -> None:
    md = "\n".join(objectives_section(load_sweep(sweep_dir), sweep_dir))
    assert (
        "every objective ran at one width (64) in this sweep" in md
        and "| objective | direction | width 64" not in md
    )
    for seed, ratio in ((0, 0.6), (1, 0.8)):
        write_objective_run(
            sweep_dir, f"knnn-w128-s{seed}", objective="knnn", seed=seed, ratio=ratio, width=128
        )
    md = "\n".join(objectives_section(load_sweep(sweep_dir), sweep_dir)).splitlines()
    assert "one width" not in "\n".join(md)
    assert _header(md, "objective")[:4] == ["objective", "direction", "width", "seeds"]
    size_head = [ln for ln in md if ln.startswith("| objective | direction | width 64")]
    assert size_head == ["| objective | direction | width 64 | width 128 | change 64 → 128 |"]
    # the change: 0.7 - 0.9, standard error sqrt(0.1²/3 + 0.1414²/2) = 0.115
    assert _row(md, "knnn | causal | 0.900")[2:] == ["0.900 ± 0.100", "0.700 ± 0.141", "-0.200 ± 0.115"]
    assert _row(md, "mpm (tokens) | bidirectional | 0.600")[3:] == ["–", "–"]  # mpm never ran at 128
    assert _row(md, "supervised **uses labels** | causal | 0.300")[3] == "–"
    assert ("Largest fall of the ratio from width 64 to 128: knnn (causal), -0.200 ± 0.115 (within 2 "
            "standard errors of no change)") in "\n".join(md)  # fmt: skip


def test_a_nested_pretraining_sweep_is_a_second_width_with_its_own_downstream_rows(sweep_dir: Path) -> None:
    """runs/objectives/width16/ (sweeps/objectives_width16.yaml) joins the comparison: its runs form rows of
    their own width, the size table shows both widths, each width gets its own ranking, and a downstream run
    on runs/objectives/width16/knnn-tokens-causal-s0 counts for width 16, not for the top-level run of the
    same name."""
    nested = sweep_dir / "width16"
    for seed, ratio in ((0, 0.95), (1, 0.97), (2, 0.99)):
        probe = {("log_pt", "backbone"): 0.1, ("log_pt", "random_init"): 0.05}
        write_objective_run(nested, f"knnn-tokens-causal-s{seed}", objective="knnn", seed=seed, ratio=ratio,
                            width=16, probe=probe)  # fmt: skip
    write_objective_run(nested, "supervised-tokens-causal-s0", objective="supervised", seed=0, ratio=0.4,
                        width=16, probe={("log_pt", "backbone"): 0.3})  # fmt: skip
    for seed in range(3):  # downstream on the nested backbones only
        write_downstream_run(sweep_dir / "downstream" / f"pid-w16-knnn-s{seed}", backbone=str(nested /
                             f"knnn-tokens-causal-s{seed}"), task="pid", regime="frozen", n_train_events=25,
                             seed=seed, value=0.4 + seed / 10)  # fmt: skip
    md = "\n".join(objectives_section(load_sweep(sweep_dir), sweep_dir))
    lines = md.splitlines()
    assert _row(lines, "knnn, width 16 | causal | 3 |")[3:] == ["0.500 ± 0.100"]  # pid, frozen, 25 events
    assert not [ln for ln in lines if ln.startswith("| knnn, width 64 | causal |")]  # no width-64 runs
    assert _row(lines, "knnn | causal | 16")[3:5] == ["3", "0.970 ± 0.020"]
    assert "| objective | direction | width 16 | width 64 | change 16 → 64 |" in lines
    assert _row(lines, "knnn | causal | 0.970")[4] == "-0.070 ± 0.059"  # 0.90 - 0.97, sqrt(0.02²/3 + 0.1²/3)
    fall = "Largest fall of the ratio from width 16 to 64: supervised (causal), -0.100 (one seed at a width"
    assert fall + ": no standard error)" in md
    assert "### Ranking by probes, width 64" in lines and "### Ranking by probes, width 16" in lines
    # the top-level report reads the nested sweep too, and load_sweep does not take it for a run
    assert "width16" not in {r.name for r in load_sweep(sweep_dir).all_runs}


def test_downstream_columns_per_task_regime_and_budget_with_adapter_only_row(sweep_dir: Path) -> None:
    down = sweep_dir / "downstream"
    for seed, value in ((0, 0.5), (1, 0.6), (2, 0.7)):
        backbone = str(sweep_dir / f"knnn-tokens-causal-s{seed}")
        for regime, budget in (("frozen", 100), ("frozen", 1000), ("finetune", 100)):
            write_downstream_run(
                down / f"pid-knnn-s{seed}-{regime}-{budget}",
                backbone=backbone,
                task="pid",
                regime=regime,
                n_train_events=budget,
                seed=seed,
                value=value + (budget == 1000) * 0.2 + (regime == "finetune") * 0.1,
            )
        # a variant reading another layer is another study: not pooled into the frozen column
        write_downstream_run(
            down / f"pid-knnn-s{seed}-mix",
            backbone=backbone,
            task="pid",
            regime="frozen",
            n_train_events=100,
            seed=seed,
            value=0.0,
            layers="mix",
        )
        write_downstream_run(
            down / f"pid-sup-s{seed}",
            backbone=str(sweep_dir / f"supervised-tokens-causal-s{seed}"),
            task="pid",
            regime="frozen",
            n_train_events=100,
            seed=seed,
            value=0.9,
        )
        write_downstream_run(
            sweep_dir / "downstream-reference" / f"pid-ao-s{seed}",
            backbone=str(sweep_dir / "knnn-tokens-causal-s0"),
            task="pid",
            regime="adapter_only",
            n_train_events=100,
            seed=seed,
            value=0.2 + seed / 10,
        )
    write_downstream_run(
        down / "tracking-knnn-s0",
        backbone=str(sweep_dir / "knnn-tokens-causal-s0"),
        task="tracking",
        regime="frozen",
        n_train_events=100,
        seed=0,
        value=0.42,
    )
    md = objectives_section(load_sweep(sweep_dir), sweep_dir)
    text = "\n".join(md)
    assert "### Downstream, per task" in text
    assert "pid: macro_recall (balanced accuracy) on the test split" in text
    pid = text.split("pid: macro_recall")[1].split("tracking: ari_pooled")[0].splitlines()
    head = _header(pid, "objective")
    assert head == [
        "objective",
        "direction",
        "seeds",
        "frozen FM, 100 events",
        "frozen FM, 1,000 events",
        "fine-tuned FM, 100 events",
        "fine-tuned FM, 1,000 events",
    ]
    assert _row(pid, "knnn")[2:] == ["3", "0.600 ± 0.100", "0.800 ± 0.100", "0.700 ± 0.100", "–"]
    assert (
        _row(pid, "supervised")[0] == "supervised **uses labels**"
        and _row(pid, "supervised")[3] == "0.900 ± 0.000"
    )
    assert _row(pid, "no pretraining (AdapterOnly)")[2:4] == ["3", "0.300 ± 0.100"]
    assert not any(ln.startswith("| mpm") for ln in pid)  # no adapter ran on mpm
    tracking = text.split("tracking: ari_pooled")[1].splitlines()
    assert _row(tracking, "knnn")[2:] == ["3", "0.420 (n=1)"]


def test_the_report_has_the_section_only_for_multi_objective_sweeps(sweep_dir: Path, tmp_path: Path) -> None:
    md, _ = report.build_report(sweep_dir, tmp_path / "out", n_boot=5)
    assert md.count("## Objectives compared") == 1 and "| knnn | causal | 64 | 3 | 0.900 ± 0.100 |" in md
    html = report.markdown_to_html(md, "objectives")
    assert "<strong>uses labels</strong>" in html
    plain = write_sweep(tmp_path / "quickstart", widths=[64, 128], steps=300)
    md, _ = report.build_report(plain, tmp_path / "out2", n_boot=5)
    assert "Objectives compared" not in md
    one = tmp_path / "one"
    for seed in range(2):
        write_objective_run(one, f"mpm-s{seed}", objective="mpm", seed=seed, ratio=0.5)
    assert objectives_section(load_sweep(one), one) == []  # seeds of one objective: nothing to compare


def test_ranking_and_checks_say_which_claims_hold(tmp_path: Path) -> None:
    """k-NNN beats its untrained network in every seed, contrastive not in one; the supervised reference is
    below k-NNN, which the check names; the ranking orders by the probe means."""
    sweep = tmp_path / "objectives"
    for seed in range(3):
        for name, backbone in (("knnn", 0.3 + seed / 10), ("contrastive", (0.15, 0.05, 0.2)[seed])):
            probe = {("log_pt", "backbone"): backbone, ("log_pt", "random_init"): 0.1}
            write_objective_run(sweep, f"{name}-tokens-causal-s{seed}", objective=name, seed=seed, ratio=0.5,
                                probe=probe)  # fmt: skip
        probe = {("log_pt", "backbone"): 0.35, ("log_pt", "random_init"): 0.1}
        write_objective_run(sweep, f"supervised-tokens-causal-s{seed}", objective="supervised", seed=seed,
                            ratio=0.3, probe=probe)  # fmt: skip
    md = "\n".join(objectives_section(load_sweep(sweep), sweep))
    assert "### Ranking by probes" in md
    ranked = [ln for ln in md.splitlines() if ln[:4] in ("| 1 ", "| 2 ", "| 3 ")]
    assert [r.split("|")[2].strip().split(" ")[0] for r in ranked] == ["knnn", "supervised", "contrastive"]
    assert _row(md, "1 ")[3].startswith("0.400 (0.300 ± 0.100)")
    assert (
        "knnn (causal) beats its untrained network on log pT R²: yes, gain 0.300 ± 0.100 over 3 seeds" in md
    )
    assert "contrastive (causal) beats its untrained network on log pT R²: NO" in md
    assert "supervised **uses labels** >= every self-supervised variant on log pT R² (0.350): NO, below " \
           "knnn (causal)" in md  # fmt: skip


def test_downstream_size_sections_keep_to_one_objective(sweep_dir: Path, tmp_path: Path) -> None:
    """The generic downstream section picks 'the largest backbone' and draws metric against size; over
    backbones of several objectives that would compare objectives as if they were sizes. It keeps to the
    k-NNN backbones (and AdapterOnly) and says so; one objective leaves it unchanged."""
    from analysis.downstream.report import report_sections

    down = sweep_dir / "downstream"
    # the supervised backbone is the larger one: unfiltered, "the largest backbone" would be it
    write_objective_run(sweep_dir, "supervised-w128-s0", objective="supervised", seed=0, ratio=0.3, width=128)
    for name, value in (("knnn-tokens-causal-s0", 0.3), ("supervised-w128-s0", 0.6)):
        write_downstream_run(down / f"noise-{name}", backbone=str(sweep_dir / name), task="noise",
                             regime="frozen", n_train_events=100, seed=0, value=value)  # fmt: skip
    blocks = "\n".join(report_sections(sweep_dir, tmp_path / "out"))
    assert "Backbones of 2 pretraining objectives" in blocks and "use the knnn (causal) backbones" in blocks
    assert "| 100 | 0.500 ± 0.000 (n=1) |" in blocks  # knnn's accuracy (value + 0.2), not supervised's 0.800
    assert "0.800" not in blocks
    (down / "noise-supervised-w128-s0" / "metrics.json").unlink()
    blocks = "\n".join(report_sections(sweep_dir, tmp_path / "out2"))
    assert "pretraining objectives" not in blocks and "| 100 | 0.500 ± 0.000 (n=1) |" in blocks
