"""Event display: x-y and r-z views of one event, coloured by true track (top) and predicted track (bottom).

Predicted tracks take the colour of the true track they match by majority, so a correct reconstruction looks
identical in both rows; points without a true track are grey in the top row.

    >>> plot_event(points, true_track, pred_track, Path("event-12.png"), title="m3, 10k labels")
    >>> display_run(Path("runs/ds/tracking-m3-10000-s0"), Path("report/display"), n_events=3)
"""

from __future__ import annotations

from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

GREY = (0.75, 0.75, 0.75, 0.6)


def _colours(ids: np.ndarray) -> np.ndarray:
    """A stable colour per id (negative ids grey): [n, 4] RGBA."""
    cmap = plt.get_cmap("tab20")
    out = np.array([cmap((int(i) * 7) % 20) for i in np.maximum(ids, 0)]) if ids.size else np.zeros((0, 4))
    if ids.size:
        out[ids < 0] = GREY
    return out


def majority_true(true_track: np.ndarray, pred_track: np.ndarray) -> np.ndarray:
    """For each point, the true track that holds most of its predicted track's points (-1 if none)."""
    out = np.full(pred_track.shape, -1, dtype=np.int64)
    for p in np.unique(pred_track):
        sel = pred_track == p
        t = true_track[sel]
        t = t[t >= 0]
        if t.size:
            ids, counts = np.unique(t, return_counts=True)
            out[sel] = ids[np.argmax(counts)]
    return out


def plot_event(
    points: np.ndarray, true_track: np.ndarray, pred_track: np.ndarray, out_png: Path, title: str = ""
) -> Path:
    """Write a 2 x 2 PNG: (truth, prediction) x (x-y, r-z). points: [n, 4] E, x, y, z in cm."""
    x, y, z = points[:, 1], points[:, 2], points[:, 3]
    r = np.hypot(x, y)
    fig, axes = plt.subplots(2, 2, figsize=(10, 9), constrained_layout=True)
    rows = (("true track", _colours(true_track)),
            ("predicted track", _colours(majority_true(true_track, pred_track))))  # fmt: skip
    for row, (label, colours) in enumerate(rows):
        axes[row, 0].scatter(x, y, c=colours, s=3, linewidths=0)
        axes[row, 0].set(xlabel="x [cm]", ylabel="y [cm]", title=f"{label}: x-y", aspect="equal")
        axes[row, 1].scatter(z, r, c=colours, s=3, linewidths=0)
        axes[row, 1].set(xlabel="z [cm]", ylabel="r [cm]", title=f"{label}: r-z")
    n_true = np.unique(true_track[true_track >= 0]).size
    fig.suptitle(
        f"{title}  ({len(points)} points, {n_true} true tracks, {np.unique(pred_track).size} predicted)"
    )
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def display_run(run_dir: Path, out_dir: Path, n_events: int = 3, title: str = "") -> list[Path]:
    """Event displays of the first `n_events` saved test events of a tracking run's predictions.h5."""
    path = run_dir / "predictions.h5"
    if not path.is_file():
        raise ValueError(f"{path}: no saved predictions; rerun with n_display_events > 0")
    pngs = []
    with h5py.File(path, "r") as f:
        for name in sorted(f)[:n_events]:
            g = f[name]
            pngs.append(
                plot_event(
                    g["points"][:], g["track_id"][:], g["pred"][:], out_dir / f"{name}.png", title or name
                )
            )
    return pngs
