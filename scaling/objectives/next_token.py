"""Next-token prediction: each spacepoint predicts the next one in serialised order (the paper's ablation).

Targets are the next point's (r, phi, eta) as an offset from the current point (phi wrapped into
[-0.5, 0.5)), or absolute with `relative_targets: false`. The last point of each event has no successor and is
masked. Difficulty = mean distance between consecutive points; proxy = MSE of predicting a zero offset.
"""

from __future__ import annotations

import numpy as np

from scaling.objectives.base import Objective, register
from scaling.objectives.knnn import physical_offsets


@register("next_token")
class NextTokenObjective(Objective):
    """Predict the next spacepoint's coordinates."""

    causal_only = True  # the targets are later points in the serialised order

    @property
    def slots(self) -> int:
        return 1

    @property
    def coordinates(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("dr", "rdphi", "dz") if self.cfg.metric == "physical" else ("dr", "dphi", "deta")

    def build_raw_targets(self, features01_sorted: np.ndarray) -> dict[str, np.ndarray]:
        """{"target": (n, 3) f32, "mask": (n,) bool, "difficulty": () f32, "proxy": () f32}."""
        pos = np.asarray(features01_sorted, dtype=np.float64)[:, 1:4]
        n = pos.shape[0]
        nxt = np.concatenate([pos[1:], pos[-1:]]) if n else pos
        off = nxt - pos  # (n, 3)
        off[:, 1] = (off[:, 1] + 0.5) % 1.0 - 0.5
        mask = np.arange(n) < n - 1
        if self.cfg.metric == "physical":
            if self.geometry is None:
                raise ValueError("objective.metric=physical: bind_stats(manifest stats) must come first")
            idx = np.minimum(np.arange(n) + 1, max(n - 1, 0))[:, None]
            off = physical_offsets(pos, idx, self.geometry)[:, 0, :]
            nxt = off
        target = off if self.cfg.relative_targets else nxt
        target = np.where(mask[:, None], target, 0.0)
        valid = off[mask]
        difficulty = float(np.linalg.norm(valid, axis=1).mean()) if valid.size else 0.0
        proxy = float((valid**2).mean()) if valid.size else 0.0
        return {
            "target": target.astype(np.float32),
            "mask": mask,
            "difficulty": np.asarray(difficulty, dtype=np.float32),
            "proxy": np.asarray(proxy, dtype=np.float32),
        }
