"""Next-token prediction: each spacepoint predicts the next one in serialised order (the paper's ablation).

Targets are the next point's (r, phi, eta) as an offset from the current point (phi wrapped into
[-0.5, 0.5)), or absolute with `relative_targets: false`. The last point of each event has no successor and is
masked. Difficulty = mean distance between consecutive points; proxy = MSE of predicting a zero offset.
"""

from __future__ import annotations

import numpy as np
import torch

from scaling.objectives.base import Objective, register


@register("next_token")
class NextTokenObjective(Objective):
    """Predict the next spacepoint's coordinates."""

    @property
    def out_dim(self) -> int:
        return 3

    def build_targets(self, features01_sorted: np.ndarray) -> dict[str, np.ndarray]:
        """{"target": (n, 3) f32, "mask": (n,) bool, "difficulty": () f32, "proxy": () f32}."""
        pos = np.asarray(features01_sorted, dtype=np.float64)[:, 1:4]
        n = pos.shape[0]
        nxt = np.concatenate([pos[1:], pos[-1:]]) if n else pos
        off = nxt - pos  # (n, 3)
        off[:, 1] = (off[:, 1] + 0.5) % 1.0 - 0.5
        mask = np.arange(n) < n - 1
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

    def token_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = targets["mask"].to(pred.device)  # [T]
        sq = torch.where(mask, (pred - targets["target"].to(pred.device)).square().sum(-1), 0.0)  # [T]
        return sq, mask.to(pred.dtype) * 3.0
