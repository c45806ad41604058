"""Exact k next-nearest-neighbour search: for every point, its k nearest points of strictly larger r.

Distance: Euclidean in the normalised (r, phi, eta) cube with phi periodic (period 1), in float64:

    d = sqrt(dr^2 + min(|dphi|, 1 - |dphi|)^2 + deta^2)

computed in the same operation order by every search here, so they agree to the bit. Order: by d, exact ties
by point index (the caller's order); slots past the available neighbours are -1.

`knnn_indices` (the CPU search) is one compiled pass (numba) over the event. Points are binned in a g x g grid
of (phi, eta) columns, g = sqrt(n / PER_CELL), each column sorted by r; queries go in column order, then r. A
query visits columns ring by ring around its own, skips a column whose (phi, eta) box lies farther than its
current k-th distance, and scans a column upwards from the first larger r, stopping once dr alone exceeds that
distance; an ascending array of the k best (distance, index) pairs takes each closer point by insertion. Only
points within a radius h are offered: h is 1.3x the previous query's k-th distance (at most twice the radius
of a half-ball holding k points at the event's mean density); a query left with fewer than k inside h goes
again with 2h, and a point with at most k larger-r points searches everything at once. On simulated TPC events
a query computes ~100 distances in ~10 columns; keeping the best k is about half its time (the insertions'
data-dependent branches). It is ~6x the earlier k-d tree search and ~30x brute force
(benchmarks/bench_inputs_knnn.py). Cost grows with the points inside one column's r window: a cluster of m
points far denser than the event costs ~m^2/2 distances (tens of ms at m = 3000).
`gather_offsets` turns the indices into targets in the same compiled style.

`brute_force_indices` is the O(n^2) reference, `knnn_indices_torch` the dense top-k on a torch device.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

PER_CELL = 32  # points per (phi, eta) column on average
H_SCALE = 2.0  # largest first search radius, in units of the radius of a half-ball holding k points
H_NEXT = 1.3  # first search radius in units of the previous query's k-th distance
_EPS = 1e-12  # absolute slack on every lower bound: covers rounding of cell edges


def _distances(*coords: np.ndarray) -> np.ndarray:
    """Distances between query (qr, qp, qe) and candidate (cr, cp, ce) coordinates (broadcast)."""
    qr, qp, qe, cr, cp, ce = coords
    d = cr - qr
    d *= d
    dp = np.abs(cp - qp)
    np.minimum(dp, 1.0 - dp, out=dp)
    dp *= dp
    d += dp
    de = ce - qe
    de *= de
    d += de
    return np.sqrt(d, out=d)


def pair_distances(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Distances (b, m) float64 from points q (b, 3) to points c (m, 3), phi periodic."""
    return _distances(
        q[:, 0, None], q[:, 1, None], q[:, 2, None], c[None, :, 0], c[None, :, 1], c[None, :, 2]
    )


def knnn_indices(pos: np.ndarray, k: int) -> np.ndarray:
    """Indices (n, k) int64 (-1 = none) of the k nearest strictly-larger-r points of pos (n, 3).

    pos columns are normalised (r, phi, eta); phi must lie in [0, 1] (it is periodic there)."""
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"k-NNN search: expected positions of shape (n, 3), got {pos.shape}")
    n = pos.shape[0]
    idx = np.full((n, k), -1, dtype=np.int64)
    if n < 2 or k < 1:
        return idx
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"k-NNN search: point {bad} has a non-finite coordinate {pos[bad].tolist()}")
    r, p, e = (np.ascontiguousarray(pos[:, j]) for j in range(3))
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("k-NNN search: phi must be normalised to [0, 1] (it is periodic there)")
    g = int(max(1, min(256, round(np.sqrt(n / PER_CELL)))))
    e_lo, e_span = float(e.min()), float(np.ptp(e))
    e_span = e_span if e_span > 0.0 else 1.0
    a = np.minimum((p * g).astype(np.int64), g - 1)
    b = np.minimum(((e - e_lo) / e_span * g).astype(np.int64), g - 1)
    col = a * g + b
    order = np.lexsort((r, col))  # by column, then r, then index
    start = np.zeros(g * g + 1, dtype=np.int64)
    np.cumsum(np.bincount(col, minlength=g * g), out=start[1:])
    r_sorted = np.sort(r)
    n_larger = n - np.searchsorted(r_sorted, r, side="right")
    r_span = float(r_sorted[-1] - r_sorted[0])
    h_max = float(np.sqrt(r_span**2 + 0.25 + e_span**2)) * (1.0 + 1e-9) + _EPS  # beyond any pair
    half_ball = (3.0 * k * max(r_span, 1e-6) * e_span / (2.0 * np.pi * n)) ** (1.0 / 3.0)
    _grid_search(r, p, e, col, order, r[order], p[order], e[order], start, n_larger, k, g, e_lo, e_span / g,
                 H_SCALE * half_ball, h_max, idx)  # fmt: skip
    return idx


@numba.njit(cache=True, nogil=True, inline="always")
def _before(da, ia, db, ib):  # noqa: ANN001, ANN202
    """(distance, index) order."""
    return da < db or (da == db and ia < ib)


@numba.njit(cache=True, nogil=True, inline="always")
def _offer(d, j, m, k, hd, hj):  # noqa: ANN001, ANN202
    """Insert (d, j) into the ascending array of size m (bounded at k; the last is the k-th)."""
    if m == k:
        if not _before(d, j, hd[k - 1], hj[k - 1]):
            return m
        t = k - 1
    else:
        t = m
        m += 1
    while t > 0 and _before(d, j, hd[t - 1], hj[t - 1]):
        hd[t] = hd[t - 1]
        hj[t] = hj[t - 1]
        t -= 1
    hd[t] = d
    hj[t] = j
    return m


@numba.njit(cache=True, nogil=True)
def _scan_column(lo, end, ri, pi, ei, ps, es, order, rs, m, k, hd, hj, h):  # noqa: ANN001, ANN202
    """Offer the points of one column (sorted positions lo:end) with r > ri and d <= h to the best-k array of
    size m; returns the new size. Stops once dr alone exceeds the radius still of interest."""
    top = end
    while lo < top:  # first position with r strictly larger than ri
        mid = (lo + top) >> 1
        if rs[mid] <= ri:
            lo = mid + 1
        else:
            top = mid
    lim = h if m < k else min(h, hd[k - 1])
    lim2 = lim * lim * (1.0 + 1e-12)
    for s in range(lo, end):
        dr = rs[s] - ri
        if dr > lim:
            break
        d = dr * dr
        dp = abs(ps[s] - pi)
        dp = min(dp, 1.0 - dp)
        d += dp * dp
        de = es[s] - ei
        d += de * de
        if d > lim2:  # cheap reject before the square root
            continue
        d = np.sqrt(d)
        if d > lim:
            continue
        m = _offer(d, order[s], m, k, hd, hj)
        if m == k:
            lim = min(h, hd[k - 1])
            lim2 = lim * lim * (1.0 + 1e-12)
    return m


@numba.njit(cache=True, nogil=True)
def _grid_search(r, p, e, col, order, rs, ps, es, start, n_larger, k, g, e_lo, we, h_first, h_max, out):  # noqa: ANN001, ANN202
    """Fill out[i, :] for every point i (queries in column order: consecutive queries share columns)."""
    n = r.shape[0]
    wp = 1.0 / g
    w_min = min(wp, we)
    seen = np.zeros(g * g, dtype=np.int64)  # visit stamp per column
    stamp = 0
    hd = np.empty(k, dtype=np.float64)
    hj = np.empty(k, dtype=np.int64)
    prev_kth = h_first
    for q in range(n):
        i = order[q]
        if n_larger[i] == 0:
            continue
        ri, pi, ei = r[i], p[i], e[i]
        a0 = col[i] // g
        b0 = col[i] - a0 * g
        # a radius just above the previous query's k-th distance (a neighbour in the same column) keeps the
        # offers few; all of a few larger-r points: search everything at once
        h = min(h_first, H_NEXT * prev_kth) if n_larger[i] > k else h_max
        while True:
            stamp += 1
            m = 0
            for ring in range(g + 1):
                lim = h if m < k else min(h, hd[k - 1])
                if (ring - 1) * w_min - _EPS > lim:  # every column of this ring lies farther
                    break
                for da in range(-ring, ring + 1):
                    a = (a0 + da) % g
                    lo = a * wp
                    if lo <= pi <= lo + wp:
                        dpb = 0.0
                    else:  # periodic distance to the nearer edge of the column's phi range
                        x = abs(pi - lo)
                        y = abs(pi - lo - wp)
                        dpb = min(min(x, 1.0 - x), min(y, 1.0 - y))
                    edge = da == -ring or da == ring
                    db = -ring
                    while db <= ring:
                        b = b0 + db
                        c = a * g + b
                        if 0 <= b < g and seen[c] != stamp:
                            seen[c] = stamp
                            elo = e_lo + b * we
                            deb = elo - ei if ei < elo else max(ei - elo - we, 0.0)
                            lim = h if m < k else min(h, hd[k - 1])
                            if np.sqrt(dpb * dpb + deb * deb) - _EPS <= lim:
                                m = _scan_column(
                                    start[c], start[c + 1], ri, pi, ei, ps, es, order, rs, m, k, hd, hj, h,
                                )  # fmt: skip
                        db += 1 if (edge or ring == 0) else 2 * ring
            if (m == k and hd[k - 1] <= h) or h >= h_max:
                break
            h = min(2.0 * h, h_max)  # fewer than k within h: every point inside 2h is found next round
        for t in range(m):
            out[i, t] = hj[t]
        if m == k:
            prev_kth = hd[k - 1]


@numba.njit(cache=True, nogil=True)
def gather_offsets(pos, idx, relative, target, sq):  # noqa: ANN001, ANN202
    """Targets of neighbours idx (n, k) of pos (n, 3): target (n, k, 3) float32 gets the offsets
    (dr, dphi wrapped into [-0.5, 0.5) as x - floor(x + 0.5), deta), or the neighbours' positions when not
    `relative`; sq (n, k) float64 the squared offsets. A missing neighbour (-1) gives zeros in both."""
    n, k = idx.shape
    for i in range(n):
        for t in range(k):
            j = idx[i, t]
            if j < 0:
                for c in range(3):
                    target[i, t, c] = 0.0
                sq[i, t] = 0.0
                continue
            o0 = pos[j, 0] - pos[i, 0]
            o1 = pos[j, 1] - pos[i, 1]
            o1 -= np.floor(o1 + 0.5)
            o2 = pos[j, 2] - pos[i, 2]
            s = o0 * o0
            s += o1 * o1
            s += o2 * o2
            sq[i, t] = s
            if relative:
                target[i, t, 0], target[i, t, 1], target[i, t, 2] = o0, o1, o2
            else:
                target[i, t, 0], target[i, t, 1], target[i, t, 2] = pos[j, 0], pos[j, 1], pos[j, 2]


def brute_force_indices(pos: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """O(n^2) reference for `knnn_indices` (same distance, same order), blocked over rows."""
    pos = np.asarray(pos, dtype=np.float64)
    n = pos.shape[0]
    idx = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        dist = pair_distances(pos[rows], pos)  # (b, n)
        dist[pos[None, :, 0] <= pos[rows, None, 0]] = np.inf  # only strictly larger r
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]  # ties by index
        found = np.take_along_axis(dist, order, 1) < np.inf
        idx[rows, : order.shape[1]] = np.where(found, order, -1)
    return idx


def knnn_indices_torch(pos: torch.Tensor, k: int, block: int = 2048) -> torch.Tensor:
    """The indices of `knnn_indices` by blocked dense distances + top-k on pos's device (n, 3) -> (n, k).

    O(n^2) work but all of it in a few large tensor ops: on a GPU thousands of events per second. Exact
    ties are broken by the device's top-k (not by index as on the CPU search)."""
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
