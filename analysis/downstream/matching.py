"""Hungarian matching and set-prediction losses for the track finder (Mask2Former, Cheng et al. 2022,
Sec. 3.2, adapted from pixels to spacepoints).

Per event, N query predictions (a track-vs-no-object logit s_k and a mask logit per point) are matched one to
one with the T true tracks by `scipy.optimize.linear_sum_assignment` on the cost

    C_kt = w_cls * (-sigmoid(s_k)) + w_focal * focal(mask_k, track_t) + w_dice * dice(mask_k, track_t).

Matched pairs get the mask focal loss, the mask dice loss and the classification loss with target "track";
unmatched queries get only the classification loss with target "no object", down-weighted by
`no_object_weight` (DETR's eos_coef). With T > N only N tracks are matched (the rest count as missed);
with T = 0 every query learns "no object".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


@dataclass(kw_only=True, frozen=True)
class SetLossWeights:
    """Weights of the matching cost and of the losses (Mask2Former's defaults: 2 / 5 / 5, eos 0.1)."""

    cls: float = 2.0
    focal: float = 5.0
    dice: float = 5.0
    no_object: float = 0.1


def pairwise_dice_cost(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - soft dice between every prediction and every target: logits [N, L], targets [T, L] -> [N, T]."""
    p = logits.sigmoid()  # [N, L]
    t = targets.float()  # [T, L]
    num = 2.0 * p @ t.T  # [N, T]
    den = p.sum(-1)[:, None] + t.sum(-1)[None, :]  # [N, T]
    return 1.0 - (num + 1.0) / (den + 1.0)


def pairwise_focal_cost(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Mean sigmoid focal loss (Lin et al. 2017), every prediction x target: [N, L], [T, L] -> [N, T]."""
    n_points = max(logits.shape[1], 1)
    p = logits.sigmoid()
    pos = (
        alpha
        * (1 - p) ** gamma
        * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    )  # [N, L]: cost if the point belongs to the target
    neg = (
        (1 - alpha)
        * p**gamma
        * F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    )  # [N, L]: cost if it does not
    t = targets.float()
    return (pos @ t.T + neg @ (1 - t).T) / n_points  # [N, T]


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Focal loss per row (mean over points) for matched pairs: [M, L] x [M, L] -> [M]."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    a_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (a_t * (1 - p_t) ** gamma * ce).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft dice loss per row: [M, L] x [M, L] -> [M]."""
    p = logits.sigmoid()
    return 1.0 - (2.0 * (p * targets).sum(-1) + 1.0) / (p.sum(-1) + targets.sum(-1) + 1.0)


def hungarian_match(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, targets: torch.Tensor, w: SetLossWeights
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal (query, track) pairs for one event: class [N], masks [N, L], targets [T, L] bool."""
    if targets.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    with torch.no_grad():
        cost = (
            -w.cls * class_logits.sigmoid()[:, None]
            + w.focal * pairwise_focal_cost(mask_logits, targets)
            + w.dice * pairwise_dice_cost(mask_logits, targets)
        )  # [N, T]
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return rows.astype(np.int64), cols.astype(np.int64)


def event_set_loss(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, targets: torch.Tensor, w: SetLossWeights
) -> tuple[torch.Tensor, int]:
    """Loss of one event's predictions (class [N], masks [N, L]) against tracks [T, L] -> (loss, matched)."""
    rows, cols = hungarian_match(class_logits, mask_logits, targets, w)
    cls_target = torch.zeros_like(class_logits)
    cls_target[rows] = 1.0
    cls_weight = torch.full_like(class_logits, w.no_object)
    cls_weight[rows] = 1.0
    cls_loss = (
        F.binary_cross_entropy_with_logits(class_logits, cls_target, weight=cls_weight, reduction="sum")
        / cls_weight.sum()
    )
    loss = w.cls * cls_loss
    if rows.size:
        m = mask_logits[torch.as_tensor(rows)]  # [M, L]
        t = targets[torch.as_tensor(cols)].float()  # [M, L]
        loss = loss + w.focal * sigmoid_focal_loss(m, t).mean() + w.dice * dice_loss(m, t).mean()
    return loss, int(rows.size)


def track_targets(track_id: np.ndarray, min_points: int = 1) -> torch.Tensor:
    """Target masks [T, L] (bool) of one event's true tracks with at least `min_points` points.

    Points with track id < 0 (no particle) and tracks below `min_points` belong to no target.
    """
    track_id = np.asarray(track_id)
    ids, counts = np.unique(track_id[track_id >= 0], return_counts=True)
    ids = ids[counts >= min_points]
    return torch.from_numpy(track_id[None, :] == ids[:, None])  # [T, L]
