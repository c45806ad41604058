"""Event display: majority colouring, PNG output and the missing-predictions error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.downstream.display import display_run, majority_true, plot_event


def test_display_colours_by_majority_and_writes_png(tmp_path: Path) -> None:
    true = np.array([0, 0, 0, 1, 1, -1])
    pred = np.array([7, 7, 5, 5, 5, 5])
    assert majority_true(true, pred).tolist() == [0, 0, 1, 1, 1, 1]
    pts = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    png = plot_event(pts, true, pred, tmp_path / "e.png", title="toy")
    assert png.stat().st_size > 1000


def test_display_without_predictions_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no saved predictions"):
        display_run(tmp_path, tmp_path / "out")
