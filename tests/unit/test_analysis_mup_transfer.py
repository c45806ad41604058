"""μP learning-rate transfer analysis on synthetic lr_transfer sweeps with known optima."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analysis.mup_transfer import analyse_transfer, main, optimal_lr
from analysis.runs import load_sweep
from tests.synthetic import write_lr_sweep

LRS = [2.0**k * 1e-4 for k in range(-3, 4)]


def test_quadratic_fit_finds_an_optimum_between_grid_points() -> None:
    true = 1e-4 * 2**0.4
    lrs = np.array(LRS)
    losses = 2.0 + 0.05 * (np.log2(lrs) - math.log2(true)) ** 2
    lr_opt, loss_opt, bracketed, method = optimal_lr(lrs, losses)
    assert method == "quadratic" and bracketed
    assert math.log2(lr_opt) == pytest.approx(math.log2(true), abs=1e-6)
    assert loss_opt == pytest.approx(2.0, abs=1e-9)


def test_optimum_at_the_edge_is_flagged() -> None:
    lrs = np.array(LRS)
    _, _, bracketed, _ = optimal_lr(lrs, 2.0 - 0.01 * np.log2(lrs))
    assert not bracketed


@pytest.mark.parametrize(("shift", "stable"), [(0.3, True), (2.0, False)])
def test_stability_verdict_follows_the_spread(tmp_path: Path, shift: float, stable: bool) -> None:
    widths = [64, 128, 256, 512]
    lr_opt = {w: 1e-4 * 2 ** (shift * i / (len(widths) - 1)) for i, w in enumerate(widths)}
    write_lr_sweep(tmp_path, widths=widths, lrs=LRS, lr_opt=lr_opt, noise=1e-4, seed=1)
    result = analyse_transfer(load_sweep(tmp_path))
    assert [o.width for o in result.widths] == widths
    for o in result.widths:
        assert abs(math.log2(o.lr_opt) - math.log2(lr_opt[o.width])) < 0.15
    assert result.spread_log2 == pytest.approx(shift, abs=0.2)
    assert result.stable is stable


def test_cli_writes_plot_and_rejects_one_width(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lr_sweep(tmp_path / "s", widths=[64, 256], lrs=LRS, lr_opt={64: 1e-4, 256: 1e-4})
    assert main([str(tmp_path / "s"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "lr_transfer.png").stat().st_size > 1000
    assert "stable across widths" in capsys.readouterr().out
    write_lr_sweep(tmp_path / "one", widths=[64], lrs=LRS, lr_opt={64: 1e-4})
    assert main([str(tmp_path / "one")]) == 2
    assert "needs at least 2 widths" in capsys.readouterr().err
