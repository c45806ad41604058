"""Exact k next-nearest-neighbour search: for every point, its k nearest points of strictly larger r.

Distance: Euclidean in the normalised (r, phi, eta) cube with phi periodic (period 1), in float64:

    d = sqrt(dr^2 + min(|dphi|, 1 - |dphi|)^2 + deta^2)

computed in the same operation order by every search here, so they agree to the bit. Order: by d, exact ties
by point index (the caller's order); slots past the available neighbours are -1.

`knnn_indices` (the CPU search) is one compiled pass (numba) over the event. Points are binned in a g x g grid
of (phi, eta) columns, g = sqrt(n / PER_CELL), each column sorted by r; queries go in column order, then r, so
consecutive queries share columns and each column keeps a cursor at the first r above the current query's. A
query takes a radius h (1.15x the previous query's k-th distance, at most twice the radius of a half-ball
holding k points at the event's mean density), visits the columns whose (phi, eta) box lies within h, and in
each scans r from the cursor while dr^2 <= h^2 - box^2, appending every point within h to a buffer without a
branch. A counting sort of the buffer on the squared distance then ranks the k nearest (square roots only for
those; a later bucket's point whose root rounds to the k-th distance sends all candidates to an exact
quickselect). A query left with c < k inside h goes again with h grown by the cube root of k/c; a point with
at most k larger-r points searches everything at once. On simulated TPC events a query visits ~16 columns and
computes ~80 distances, ~45 of them inside h; ~12 % of queries go twice. It is ~11x the earlier k-d tree
search and ~55x brute force (benchmarks/bench_inputs_knnn.py). Cost grows with the points inside one column's
r window: a cluster of m points far denser than the event costs about m times the points within its own k-th
distance in r (0.15 s at m = 20000).
`gather_offsets` turns the indices into targets in the same compiled style.

`brute_force_indices` is the O(n^2) reference, `knnn_indices_torch` the dense top-k on a torch device.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

PER_CELL = 32  # points per (phi, eta) column on average
H_SCALE = 2.0  # largest first search radius, in units of the radius of a half-ball holding k points
H_NEXT = 1.15  # first search radius in units of the previous query's k-th distance
_EPS = 1e-12  # absolute slack on upper bounds
_SLACK = 1e-9  # absolute slack on every lower bound (column edges): far above their rounding (~1e-16)


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
    _grid_search(r, p, e, col, order, r[order], p[order], e[order], start, n_larger, k, g, e_lo,
                 e_span / g, H_SCALE * half_ball, h_max, idx)  # fmt: skip
    return idx


@numba.njit(cache=True, nogil=True, inline="always")
def _before(da, ia, db, ib):  # noqa: ANN001, ANN202
    """(distance, index) order."""
    return da < db or (da == db and ia < ib)


@numba.njit(cache=True, nogil=True, inline="always")
def _sq_distance(dr, pj, pi, de):  # noqa: ANN001, ANN202
    """Squared distance from r and eta differences and two phis, in `_distances`' operation order."""
    d = dr * dr
    dp = abs(pj - pi)
    dp = min(dp, 1.0 - dp)
    d += dp * dp
    d += de * de
    return d


@numba.njit(cache=True, nogil=True, inline="always")
def _insertion_sort(d, j, m):  # noqa: ANN001, ANN202
    """Sort d[:m], j[:m] by (distance, index); fast on nearly sorted input."""
    for t in range(1, m):
        xd, xj = d[t], j[t]
        u = t
        while u > 0 and _before(xd, xj, d[u - 1], j[u - 1]):
            d[u] = d[u - 1]
            j[u] = j[u - 1]
            u -= 1
        d[u] = xd
        j[u] = xj


@numba.njit(cache=True, nogil=True)
def _quickselect(d, j, lo, hi, kk):  # noqa: ANN001, ANN202
    """Reorder d[lo:hi+1] (and j) so that position kk holds its element of that rank by (distance, index),
    every element before it ranking lower. Median-of-three pivot; branch-free partition."""
    while hi > lo:
        mid = (lo + hi) >> 1
        for a, b in ((mid, lo), (hi, lo), (mid, hi)):  # median of three into hi
            if _before(d[a], j[a], d[b], j[b]):
                d[a], d[b] = d[b], d[a]
                j[a], j[b] = j[b], j[a]
        pd, pj = d[hi], j[hi]
        s = lo
        for t in range(lo, hi):  # [lo, s) ranks below the pivot, [s, t] not
            xd, xj = d[t], j[t]
            d[t], j[t] = d[s], j[s]
            d[s], j[s] = xd, xj
            s += (xd < pd) | ((xd == pd) & (xj < pj))
        d[hi], j[hi] = d[s], j[s]
        d[s], j[s] = pd, pj
        if s == kk:
            return
        if s < kk:
            lo = s + 1
        else:
            hi = s - 1


@numba.njit(cache=True, nogil=True)
def _select(bd, bj, c, k, h2, cnt, bucket, od, oj):  # noqa: ANN001, ANN202
    """The min(c, k) nearest of c candidates (squared distances bd <= h2, indices bj), sorted by (distance,
    index), into od (distances) and oj; returns their number.

    Counting sort on the squared distance: c buckets over [0, h2], the first buckets holding k candidates
    are scattered in bucket order, their square roots taken and the few out-of-order pairs fixed by
    insertion. A later-bucket candidate can tie only if its square root rounds to the k-th distance; then
    all candidates are ranked exactly (quickselect on the distances)."""
    if c <= k:
        for t in range(c):
            od[t] = np.sqrt(bd[t])
            oj[t] = bj[t]
        _insertion_sort(od, oj, c)
        return c
    scale = c / h2
    for b in range(c + 1):
        cnt[b] = 0
    for t in range(c):
        b = min(int(bd[t] * scale), c - 1)
        bucket[t] = b
        cnt[b] += 1
    last = 0  # first bucket by which k candidates are reached; cnt[:last + 1] becomes their start slots
    taken = 0
    while True:
        x = cnt[last]
        cnt[last] = taken
        taken += x
        if taken >= k:
            break
        last += 1
    cnt[last + 1] = taken  # every later candidate is written to slot `taken` and dropped (branch-free)
    for t in range(c):
        b = min(bucket[t], last + 1)
        slot = cnt[b]
        od[slot] = bd[t]
        oj[slot] = bj[t]
        cnt[b] = slot + (b <= last)
    for t in range(taken):
        od[t] = np.sqrt(od[t])
    if taken > 4 * k:  # one crowded bucket (a dense cluster, many equal distances)
        _quickselect(od, oj, 0, taken - 1, k - 1)
        _insertion_sort(od, oj, k)
    else:
        _insertion_sort(od, oj, taken)
    kth = od[k - 1]
    bound = kth * kth * (1.0 + 1e-12)
    for t in range(c):
        if bucket[t] > last and bd[t] <= bound and np.sqrt(bd[t]) <= kth:
            for u in range(c):
                od[u] = np.sqrt(bd[u])
                oj[u] = bj[u]
            _quickselect(od, oj, 0, c - 1, k - 1)
            _insertion_sort(od, oj, k)
            break
    return k


@numba.njit(cache=True, nogil=True)
def _grid_search(r, p, e, col, order, rs, ps, es, start, n_larger, k, g, e_lo, we, h_first, h_max, out):  # noqa: ANN001, ANN202
    """Fill out[i, :] for every point i (queries in column order, then r: consecutive queries share columns
    and move each column's first-larger-r cursor forwards only)."""
    n = r.shape[0]
    wp = 1.0 / g
    bd = np.empty(n + 1, dtype=np.float64)  # candidates: squared distances, indices
    bj = np.empty(n + 1, dtype=np.int64)
    od = np.empty(n + 2, dtype=np.float64)  # the k nearest, sorted
    oj = np.empty(n + 2, dtype=np.int64)
    cnt = np.empty(n + 2, dtype=np.int64)
    bucket = np.empty(n + 1, dtype=np.int64)
    cursor = np.zeros(g * g, dtype=np.int64)  # per column: first position with r > the current query's
    cursor_run = np.full(g * g, -1, dtype=np.int64)  # the run of queries that cursor belongs to
    run = -1
    home = -1
    prev_kth = first_kth = h_first
    for q in range(n):
        i = order[q]
        if col[i] != home:  # a new run of queries from one column, by increasing r
            home = col[i]
            run += 1
            if first_kth > 0.0:  # its first query resembles the previous run's first, not its last
                prev_kth = first_kth
            first_kth = -1.0
        if n_larger[i] == 0:
            continue
        ri, pi, ei = r[i], p[i], e[i]
        # just above the previous query's k-th distance; all of at most k larger-r points at once
        h = max(min(h_first, H_NEXT * prev_kth), 1e-6 * h_first) if n_larger[i] > k else h_max
        while True:
            h2 = h * h * (1.0 + 1e-12)
            hs = h + _SLACK
            if 2.0 * hs >= 1.0:
                a_first, a_last = 0, g - 1
            else:  # phi columns overlapping [pi - h, pi + h], unwrapped (periodic)
                a_first = int(np.floor((pi - hs) * g))
                a_last = int(np.floor((pi + hs) * g))
                if a_last - a_first >= g:
                    a_first, a_last = 0, g - 1
            b_first = max(0, int(np.floor((ei - hs - e_lo) / we)))
            b_last = min(g - 1, int(np.floor((ei + hs - e_lo) / we)))
            c = 0
            for a_unwrapped in range(a_first, a_last + 1):
                a = a_unwrapped % g
                lo_p = a * wp
                if lo_p <= pi <= lo_p + wp:
                    dpb = 0.0
                else:  # periodic distance to the nearer edge of the column's phi range
                    x = abs(pi - lo_p)
                    y = abs(pi - lo_p - wp)
                    dpb = min(min(x, 1.0 - x), min(y, 1.0 - y))
                dpb = max(dpb - _SLACK, 0.0)
                dpb2 = dpb * dpb
                if dpb2 > h2:
                    continue
                for b in range(b_first, b_last + 1):
                    elo = e_lo + b * we
                    deb = elo - ei if ei < elo else max(ei - elo - we, 0.0)
                    deb = max(deb - _SLACK, 0.0)
                    box2 = dpb2 + deb * deb
                    if box2 > h2:
                        continue
                    cc = a * g + b
                    end = start[cc + 1]
                    if cursor_run[cc] != run:  # first visit in this run: binary search
                        cursor_run[cc] = run
                        lo = start[cc] + np.searchsorted(rs[start[cc] : end], ri, side="right")
                    else:
                        lo = cursor[cc]
                        while lo < end and rs[lo] <= ri:
                            lo += 1
                    cursor[cc] = lo
                    # a point within h of the query lies within sqrt(h^2 - box^2) of it in r
                    dr2_top = (h2 - box2) * (1.0 + 1e-9) + _EPS * _EPS
                    for s in range(lo, end):
                        dr = rs[s] - ri
                        if dr * dr > dr2_top:
                            break
                        d = _sq_distance(dr, ps[s], pi, es[s] - ei)
                        bd[c] = d
                        bj[c] = order[s]
                        c += d <= h2
            m = _select(bd, bj, c, k, h2, cnt, bucket, od, oj)
            if (m == k and od[k - 1] <= h) or h >= h_max:
                break
            # fewer than k within h: grow h by the cube root of the shortfall (3-d density), at least 1.1x
            h = min(h * max(1.15 * (k / max(c, 1)) ** (1.0 / 3.0), 1.1), h_max)
        for t in range(m):
            out[i, t] = oj[t]
        if m == k:
            prev_kth = od[k - 1]
            if first_kth < 0.0:
                first_kth = prev_kth


@numba.njit(cache=True, nogil=True)
def gather_offsets(pos, idx, relative, target, mask):  # noqa: ANN001, ANN202
    """Targets of neighbours idx (n, k) of pos (n, 3): target (n, k, 3) float32 gets the offsets
    (dr, dphi wrapped into [-0.5, 0.5) as x - floor(x + 0.5), deta), or the neighbours' positions when not
    `relative`; mask (n, k) bool whether the neighbour exists (a missing one, -1, gives zeros).
    Returns (sum of the offsets' lengths, sum of their squares, number of neighbours) in float64."""
    n, k = idx.shape
    sum_len = 0.0
    sum_sq = 0.0
    n_valid = 0
    for i in range(n):
        for t in range(k):
            j = idx[i, t]
            if j < 0:
                for c in range(3):
                    target[i, t, c] = 0.0
                mask[i, t] = False
                continue
            mask[i, t] = True
            n_valid += 1
            o0 = pos[j, 0] - pos[i, 0]
            o1 = pos[j, 1] - pos[i, 1]
            o1 -= np.floor(o1 + 0.5)
            o2 = pos[j, 2] - pos[i, 2]
            sq = o0 * o0
            sq += o1 * o1
            sq += o2 * o2
            sum_sq += sq
            sum_len += np.sqrt(sq)
            if relative:
                target[i, t, 0], target[i, t, 1], target[i, t, 2] = o0, o1, o2
            else:
                target[i, t, 0], target[i, t, 1], target[i, t, 2] = pos[j, 0], pos[j, 1], pos[j, 2]
    return sum_len, sum_sq, n_valid


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
