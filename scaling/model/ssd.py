"""Pure-torch Mamba-2 state-space duality (SSD): chunked scan, step-by-step reference, causal conv.

The recurrence per head h (Dao & Gu 2024, "Transformers are SSMs", eq. 1 with scalar A):

    state_t = exp(dt_t * A_h) * state_{t-1} + dt_t * x_t B_t^T        state: (headdim P, d_state N)
    y_t     = state_t C_t + D_h * x_t

`ssd_chunked` evaluates it in blocks of Q tokens: inside a chunk as a masked (Q x Q) attention-like product,
across chunks by passing one state per chunk. `seq_idx` packs several events in one sequence: the state is
reset where seq_idx changes, so packing equals running the events one by one. The decay exponents are masked
to -inf before exp (exp-then-mask overflows and gives NaN gradients) and dt, the cumulative sums and the
products run in float32 whatever the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def segment_ids(seq_idx: Tensor | None, batch: int, length: int, device: torch.device) -> Tensor:
    """(B, L) int64 ids that increase by one at every change of seq_idx (any labelling works)."""
    if seq_idx is None:
        return torch.zeros(batch, length, dtype=torch.long, device=device)
    if seq_idx.shape != (batch, length):
        raise ValueError(
            f"seq_idx has shape {tuple(seq_idx.shape)}, expected (batch, length) = {(batch, length)}"
        )
    change = torch.zeros(batch, length, dtype=torch.long, device=device)
    change[:, 1:] = (seq_idx[:, 1:] != seq_idx[:, :-1]).long()
    return change.cumsum(dim=1)  # (B, L)


def segment_bounds(
    seq_idx: Tensor | None, batch: int, length: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """(start, end) (B, L) int64: the first and last position of the segment (event) each token is in."""
    seg = segment_ids(seq_idx, batch, length, device)
    pos = torch.arange(length, device=device).expand(batch, length)
    first = torch.ones_like(seg, dtype=torch.bool)
    first[:, 1:] = seg[:, 1:] != seg[:, :-1]
    start = torch.where(first, pos, 0).cummax(dim=1).values
    last = torch.ones_like(first)
    last[:, :-1] = seg[:, :-1] != seg[:, 1:]
    end = torch.where(last, pos, length - 1).flip(1).cummin(dim=1).values.flip(1)
    return start, end


def reverse_within_segments(seq_idx: Tensor | None, batch: int, length: int, device: torch.device) -> Tensor:
    """(B, L) int64 gather index that reverses each segment in place: token t of [s, e] goes to s + e - t.

    Its own inverse; events stay where they are in the packed sequence, so seq_idx is unchanged."""
    start, end = segment_bounds(seq_idx, batch, length, device)
    return start + end - torch.arange(length, device=device)


def causal_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, seg: Tensor | None) -> Tensor:
    """Depthwise causal convolution, x (B, L, C), weight (C, 1, K); taps never cross a segment boundary."""
    k = weight.shape[-1]
    length = x.shape[1]
    xp = F.pad(x, (0, 0, k - 1, 0))  # (B, L+K-1, C)
    segp = None if seg is None else F.pad(seg, (k - 1, 0), value=-1)  # (B, L+K-1)
    out = x.new_zeros(x.shape)
    for j in range(k):  # tap j sees x[t - (K-1) + j]
        term = xp[:, j : j + length] * weight[:, 0, j]
        if segp is not None and j < k - 1:
            term = term * (segp[:, j : j + length] == seg).unsqueeze(-1).to(x.dtype)
        out = out + term
    return out if bias is None else out + bias


def _segsum_exp(a: Tensor, seg: Tensor | None) -> Tensor:
    """exp(a[j+1] + ... + a[i]) for j <= i in the same segment, else 0. a (..., Q) per-step log decays.

    The sums are cumulated along i from a masked copy (not taken as differences of one cumsum), which keeps
    them exact to float32 rounding however long the chunk (the stable segsum of the Mamba-2 reference).
    """
    q = a.shape[-1]
    strict = torch.ones(q, q, dtype=torch.bool, device=a.device).tril(-1)
    rows = a.unsqueeze(-1).expand(*a.shape, q).masked_fill(~strict, 0.0)  # [i, j] = a[i] if i > j
    sums = torch.cumsum(rows, dim=-2)  # (..., Q, Q): [i, j] = a[j+1] + ... + a[i]
    keep = torch.ones(q, q, dtype=torch.bool, device=a.device).tril(0)
    if seg is not None:
        keep = keep & (seg.unsqueeze(-1) == seg.unsqueeze(-2))
    return torch.exp(sums.masked_fill(~keep, float("-inf")))  # mask before exp


def ssd_chunked(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    chunk_size: int,
    seq_idx: Tensor | None = None,
) -> Tensor:
    """Chunked SSD. x (b, l, h, p); dt (b, l, h) after softplus; A (h) negative; B, C (b, l, g, n); D (h).

    Returns y (b, l, h, p) in x's dtype. Heads are held as (g, r): the r = h / g heads of a group share B
    and C, so the state products are one (n x Q) @ (Q x r*p) matrix product per chunk and group, with no
    copy of B or C per head; states pass between chunks by a scan over chunks (linear in their number).
    """
    b, length, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    if length == 0:
        return x.clone()
    packed = seq_idx is not None
    q = min(chunk_size, length)
    pad = (-length) % q
    nc, r = (length + pad) // q, h // g
    f32 = torch.float32
    # Padded tail tokens get dt = 0 and x = 0: they neither change the state nor leak into real outputs.
    xs = F.pad(x.to(f32), (0, 0, 0, 0, 0, pad)).view(b, nc, q, g, r, p)
    dts = F.pad(dt.to(f32), (0, 0, 0, pad)).view(b, nc, q, h)
    Bs = F.pad(B.to(f32), (0, 0, 0, 0, 0, pad)).view(b, nc, q, g, n)
    Cs = F.pad(C.to(f32), (0, 0, 0, 0, 0, pad)).view(b, nc, q, g, n)
    a = (dts * A.to(f32)).permute(0, 3, 1, 2)  # (b, h, c, q)
    a_cum = torch.cumsum(a, dim=-1)  # (b, h, c, q)
    xdt = xs * dts.view(b, nc, q, g, r, 1)  # (b, c, q, g, r, p)
    segs = seg_end = None
    if packed:
        seg = segment_ids(seq_idx, b, length, x.device)
        segs = torch.cat([seg, seg[:, -1:].expand(b, pad)], dim=1).view(b, nc, q)  # tail joins last event
        seg_end = segs[:, :, -1]  # (b, c)

    def per_token(w: Tensor) -> Tensor:  # (b, h, c, q) -> (b, c, q, g, r, 1), to scale xdt or y
        return w.permute(0, 2, 3, 1).reshape(b, nc, q, g, r, 1)

    # 1. within each chunk: y[i] = sum_j (C_i . B_j) exp(a_cum[i] - a_cum[j]) dt_j x_j
    L = _segsum_exp(a, None if segs is None else segs.unsqueeze(1)).view(b, g, r, nc, q, q)
    cb = torch.einsum("bclgn,bcsgn->bgcls", Cs, Bs).unsqueeze(2)  # (b, g, 1, c, q, q): shared by r heads
    y = torch.einsum("bgrcls,bcsgrp->bclgrp", cb * L, xdt)

    # 2. state at each chunk end, from that chunk's tokens of the chunk's last segment: (b, c, g, n, r*p)
    to_end = torch.exp(torch.flip(torch.cumsum(torch.flip(a, [-1]), -1), [-1]) - a)  # a[j+1] + ... + a[Q-1]
    if packed:
        to_end = to_end * (segs == seg_end.unsqueeze(-1)).to(f32).unsqueeze(1)
    xdt_end = (xdt * per_token(to_end)).view(b, nc, q, g, r * p)
    states = torch.einsum("bcsgn,bcsgk->bcgnk", Bs, xdt_end).view(b, nc, g, n, r, p)

    # 3. pass states across chunks: entering chunk i = (end of chunk i-1) + decay over chunk i-1 of what
    # entered it, unless an event boundary lies between (then the carried part is dropped)
    decay = torch.exp(a_cum[..., -1]).permute(0, 2, 1).reshape(b, nc, g, 1, r, 1)
    if packed:
        same = F.pad((seg_end[:, 1:] == seg_end[:, :-1]).to(f32), (1, 0)).view(b, nc, 1, 1, 1, 1)
        decay = decay * same
    ends, decays = states.unbind(1), decay.unbind(1)  # unbind: indexing in the loop costs a full-size
    entering = [states.new_zeros(b, g, n, r, p)]  # zero gradient per step in the backward pass
    for i in range(1, nc):
        entering.append(ends[i - 1] + decays[i - 1] * entering[-1])
    prev = torch.stack(entering, dim=1).view(b, nc, g, n, r * p)

    # 4. contribution of the incoming state to each token of its segment
    into = torch.exp(a_cum)  # (b, h, c, q)
    if packed:
        prev_seg = F.pad(seg_end, (1, 0), value=-3)[:, :-1]  # (b, c)
        into = into * (segs == prev_seg.unsqueeze(-1)).to(f32).unsqueeze(1)
    y_prev = torch.einsum("bclgn,bcgnk->bclgk", Cs, prev).view(b, nc, q, g, r, p)
    y = y + y_prev * per_token(into) + xs * D.to(f32).view(1, 1, 1, g, r, 1)
    return y.reshape(b, nc * q, h, p)[:, :length].to(x.dtype)


def ssd_recurrence(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, seq_idx: Tensor | None = None
) -> Tensor:
    """Step-by-step reference of the same recurrence (one token at a time; slow, for tests and benchmarks)."""
    b, length, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    seg = segment_ids(seq_idx, b, length, x.device)
    Bh = B.repeat_interleave(h // g, dim=2)  # (b, l, h, n)
    Ch = C.repeat_interleave(h // g, dim=2)
    state = x.new_zeros(b, h, p, n)
    ys = []
    for t in range(length):
        if t > 0:
            keep = (seg[:, t] == seg[:, t - 1]).to(x.dtype).view(b, 1, 1, 1)
            state = state * keep  # reset at an event boundary
        decay = torch.exp(dt[:, t] * A).view(b, h, 1, 1)
        state = decay * state + (dt[:, t].unsqueeze(-1) * x[:, t]).unsqueeze(-1) * Bh[:, t].unsqueeze(2)
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]) + D.view(1, h, 1) * x[:, t])
    return torch.stack(ys, dim=1) if ys else x.clone()
