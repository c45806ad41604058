"""k next-nearest-neighbour (k-NNN) prediction, the FM4NPP pretraining objective.

For each spacepoint i (in serialised order) the targets are its k nearest spacepoints among those with
strictly larger r, ordered by distance (ties by serialised index). The model predicts them as 3k numbers.

Distance space: the normalised (r01, phi01, eta01) cube, Euclidean, with phi periodic: phi01 spans one full
turn, so the phi difference is wrapped into [-0.5, 0.5) before squaring.

Targets: by default the neighbours' offsets from point i, (dr, dphi wrapped, deta), per neighbour in that
order; offsets are small and centred, which conditions the regression far better than absolute positions
(the absolute (r, phi, eta) of the neighbours with `relative_targets: false`). Points with fewer than k
larger-r points have the missing slots masked; MSE is taken over the valid slots only.

Neighbour search (`knnn_indices`): points are taken in slabs of increasing r; each slab queries a periodic
k-d tree (scipy cKDTree, box size 1 along phi) holding only the points above the slab's lowest r, for about
2k + 2 candidates, and drops candidates with r <= r_i. A point is settled when it has k valid candidates all
strictly closer than the farthest candidate returned (so nothing unseen can be closer, ties included), or
when every larger-r point was seen; unsettled points go round again with twice as many candidates.
`knnn_indices_torch` does the same search as blocked dense distances + top-k on any torch device (for
device-side targets), and `knnn_brute_force` is the O(n^2) reference the tests compare both with.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from scaling.objectives.base import Objective, register

# r and eta never wrap (data in [0, 1]); phi wraps with period 1
_BOX = (4.0, 1.0, 4.0)
N_SLABS = 8  # r slabs per search round (more: smaller trees but more of them)


def pair_offsets(pos: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Offsets (n, k, 3) of neighbours idx (n, k) (-1 = none, zero offset) from each point, phi wrapped."""
    safe = np.where(idx >= 0, idx, np.arange(pos.shape[0])[:, None])
    off = pos[safe] - pos[:, None, :]  # (n, k, 3)
    off[..., 1] = (off[..., 1] + 0.5) % 1.0 - 0.5
    return off


def knnn_neighbours(pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) int64 (-1 = none) and distances (n, k) (inf = none) of the k nearest larger-r points.

    pos: (n, 3) normalised [r, phi, eta]."""
    pos = np.asarray(pos, dtype=np.float64)
    idx = knnn_indices(pos, k)
    dist = np.where(idx >= 0, np.linalg.norm(pair_offsets(pos, idx), axis=-1), np.inf)
    return idx, dist


def knnn_indices(pos: np.ndarray, k: int) -> np.ndarray:
    """The indices part of `knnn_neighbours` (pos float64)."""
    n = pos.shape[0]
    idx = np.full((n, k), -1, dtype=np.int64)
    if n < 2:
        return idx
    r = pos[:, 0]
    n_larger = n - np.searchsorted(np.sort(r), r, side="right")
    todo = np.flatnonzero(n_larger > 0)
    data = pos.copy()
    data[:, 1] = np.mod(data[:, 1], 1.0)
    kq = 2 * k + 2
    while todo.size:
        # Points are searched in slabs of increasing r, each against a tree of only the points above the
        # slab's lowest r: candidates below a point's own r (never targets) are few, so few queries suffice.
        todo = todo[np.argsort(r[todo], kind="stable")]
        left = [
            _settle(data, r, n_larger, slab, k, kq, idx)
            for slab in np.array_split(todo, max(1, min(N_SLABS, todo.size // (4 * k))))
        ]
        todo = np.concatenate(left)
        kq = 2 * kq
    return idx


def _settle(
    data: np.ndarray,
    r: np.ndarray,
    n_larger: np.ndarray,
    todo: np.ndarray,
    k: int,
    kq: int,
    idx: np.ndarray,
) -> np.ndarray:
    """Query `kq` candidates for the points `todo`, write the settled ones into idx, return the others."""
    sub = np.flatnonzero(r > r[todo].min())
    kq = min(kq, sub.size)
    d, j = cKDTree(data[sub], boxsize=_BOX).query(data[todo], k=kq)
    d, j = d.reshape(todo.size, kq), sub[j.reshape(todo.size, kq)]
    valid = r[j] > r[todo][:, None]  # (m, kq)
    d, j, valid = _order_ties(d, j, valid)
    rank = np.cumsum(valid, axis=1) - 1
    n_valid = rank[:, -1] + 1
    kth = np.take_along_axis(d, _kth_pos(rank, valid, k), 1)[:, 0]  # distance of the k-th valid
    # Settled: every larger-r point seen, or k valid candidates all strictly inside the searched ball.
    done = (kq >= sub.size) | (n_valid >= n_larger[todo]) | ((n_valid >= k) & (kth < d[:, -1]))
    sel = valid & (rank < k) & done[:, None]
    rows, cols = np.nonzero(sel)
    idx[todo[rows], rank[rows, cols]] = j[rows, cols]
    return todo[~done]


def _kth_pos(rank: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Column (m, 1) of the k-th valid candidate in each row (0 where there is none)."""
    hit = valid & (rank == k - 1)
    return np.argmax(hit, axis=1)[:, None]


def _order_ties(d: np.ndarray, j: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Re-sort rows holding exactly equal distances by (distance, index), so ties break like the reference."""
    tied = np.flatnonzero(np.any(np.diff(d, axis=1) == 0, axis=1))
    if tied.size:
        sub_d, sub_j = d[tied], j[tied]
        order = _row_lexsort(sub_d, sub_j)
        d[tied] = np.take_along_axis(sub_d, order, 1)
        j[tied] = np.take_along_axis(sub_j, order, 1)
        valid[tied] = np.take_along_axis(valid[tied], order, 1)
    return d, j, valid


def _row_lexsort(d: np.ndarray, j: np.ndarray) -> np.ndarray:
    by_j = np.argsort(j, axis=1, kind="stable")
    by_d = np.argsort(np.take_along_axis(d, by_j, 1), axis=1, kind="stable")
    return np.take_along_axis(by_j, by_d, 1)


def knnn_indices_torch(pos: torch.Tensor, k: int, block: int = 2048) -> torch.Tensor:
    """The indices of `knnn_neighbours` by blocked dense distances + top-k on pos's device (n, 3) -> (n, k).

    O(n^2) work but all of it in a few large tensor ops: on a GPU thousands of events per second, on a CPU
    close to the tree for events of about a thousand points. Exact ties are broken by the device's top-k
    (not by index as on the tree path)."""
    n = pos.shape[0]
    idx = torch.full((n, k), -1, dtype=torch.int64, device=pos.device)
    kk = min(k, n)
    if kk == 0:
        return idx
    r = pos[:, 0]
    for start in range(0, n, block):
        rows = pos[start : start + block]  # [b, 3]
        off = pos[None, :, :] - rows[:, None, :]  # [b, n, 3]
        dphi = off[..., 1].abs()
        dphi = torch.minimum(dphi, 1.0 - dphi)  # periodic phi
        d2 = off[..., 0].square() + dphi.square() + off[..., 2].square()  # [b, n]
        d2 = d2.masked_fill(r[None, :] <= rows[:, 0:1], float("inf"))  # only strictly larger r
        val, j = torch.topk(d2, kk, dim=1, largest=False, sorted=True)  # [b, kk]
        idx[start : start + rows.shape[0], :kk] = torch.where(torch.isfinite(val), j, -1)
    return idx


def knnn_brute_force(pos: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """O(n^2) reference for `knnn_neighbours` (same distance, same tie order), blocked over rows."""
    pos = np.asarray(pos, dtype=np.float64)
    n = pos.shape[0]
    idx = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        off = pos[None, :, :] - pos[rows, None, :]  # (b, n, 3)
        off[..., 1] = (off[..., 1] + 0.5) % 1.0 - 0.5
        dist = np.sqrt((off**2).sum(-1))
        dist[pos[None, :, 0] <= pos[rows, None, 0]] = np.inf  # only strictly larger r
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]  # ties by index
        found = np.take_along_axis(dist, order, 1) < np.inf
        idx[rows, : order.shape[1]] = np.where(found, order, -1)
    dist = np.where(idx >= 0, np.linalg.norm(pair_offsets(pos, idx), axis=-1), np.inf)
    return idx, dist


@register("knnn")
class KnnnObjective(Objective):
    """Predict the k next-nearest larger-r neighbours of every spacepoint."""

    @property
    def out_dim(self) -> int:
        return 3 * self.cfg.k

    def build_targets(self, features01_sorted: np.ndarray) -> dict[str, np.ndarray]:
        """{"target": (n, 3k) f32, "mask": (n, k) bool, "difficulty": () f32, "proxy": () f32}."""
        pos = np.asarray(features01_sorted, dtype=np.float64)[:, 1:4]
        if self.cfg.target_backend == "torch":
            device = torch.device(self.cfg.target_device)
            idx = knnn_indices_torch(torch.from_numpy(pos).to(device), self.cfg.k).cpu().numpy()
        else:
            idx = knnn_indices(pos, self.cfg.k)
        mask = idx >= 0
        off = pair_offsets(pos, idx)  # (n, k, 3)
        dist = np.sqrt(np.square(off).sum(-1))  # (n, k)
        target = off if self.cfg.relative_targets else pos[np.where(mask, idx, 0)]
        target = np.where(mask[..., None], target, 0.0)
        n_valid = int(mask.sum())
        # difficulty: mean k-NN distance; proxy: MSE of predicting zero offsets (the trivial predictor).
        difficulty = float(dist[mask].mean()) if n_valid else 0.0
        proxy = float((off[mask] ** 2).mean()) if n_valid else 0.0
        return {
            "target": target.reshape(pos.shape[0], 3 * self.cfg.k).astype(np.float32),
            "mask": mask,
            "difficulty": np.asarray(difficulty, dtype=np.float32),
            "proxy": np.asarray(proxy, dtype=np.float32),
        }

    def token_errors(
        self, pred: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.cfg.k
        mask = targets["mask"].to(pred.device)  # [T, k]
        diff = pred.view(-1, k, 3) - targets["target"].to(pred.device).view(-1, k, 3)  # [T, k, 3]
        sq = torch.where(mask, diff.square().sum(-1), 0.0).sum(-1)  # [T]
        return sq, mask.sum(-1).to(pred.dtype) * 3.0
