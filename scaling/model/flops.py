"""Analytic FLOPs of the point model (2 FLOPs per multiply-add), per token, forward + backward.

Forward, per token, with Q = min(chunk_size, seq_len) and n_c = ceil(seq_len / Q) chunks:

    embedding   2 (1 + n_pos) d                       (energy and NeRF linears)
    per layer   in_proj       2 d (2 d_in + 2 G N + H)
                conv1d        2 d_conv (d_in + 2 G N)
                SSD  C.B      2 Q G N                  (Q x Q scores per group, full square as computed)
                     y_diag   2 Q d_in                 (scores times dt * x)
                     states   2 d_in N                 (state at each chunk end)
                     passing  2 n_c d_in N / Q         (chunk-to-chunk state matrix)
                     y_off    2 d_in N                 (incoming state read out by C)
                out_proj      2 d_in d
    head        2 d out_dim                           (linear head)
                2 (1 + 2 F) d + 8 d^2 + 2 d out_dim   (order-head: index encoding, MLP d -> 2d -> d, out)

A bidirectional layer runs two mixers (forward and reverse scan): twice the per-layer terms, plus
2 (2 d) d for the projection of `merge: concat`.

Forward + backward = 3 x forward (each matmul needs two of its size backward; Kaplan et al. 2020, 2.1).
Norms, gating, softplus, exp, masks and residual adds are O(d) per token and left out (< 1 % at d >= 64).
`torch.utils.flop_counter.FlopCounterMode` sees the matmuls and einsums of the reference path but not the
depthwise conv (elementwise taps there) nor elementwise ops; the input embedding gets no input gradient,
so it counts 2x there, not 3x. `tests/unit/test_model_flops.py` compares the two.
"""

from __future__ import annotations

import math

from scaling.model.config import ModelConfig, check_resolved


def layer_flops_terms(cfg: ModelConfig, seq_len: int) -> dict[str, float]:
    """Forward FLOPs per token of one Mamba-2 block, by term."""
    d, di, n, g, h = cfg.width, cfg.d_inner, cfg.d_state, cfg.ngroups, cfg.n_heads
    q = max(1, min(cfg.chunk_size, seq_len))
    n_chunks = math.ceil(max(seq_len, 1) / q)
    pad = n_chunks * q / max(seq_len, 1)  # the padded tail of the last chunk is computed too
    return {
        "in_proj": 2.0 * d * (2 * di + 2 * g * n + h),
        "conv": 2.0 * cfg.d_conv * cfg.conv_dim,
        "ssd_cb": 2.0 * q * g * n * pad,
        "ssd_diag": 2.0 * q * di * pad,
        "ssd_states": 2.0 * di * n * pad,
        # a scan over chunks (state = decay * state + chunk state), linear in their number, as in
        # mamba_ssm's state-passing kernel and the reference path
        "ssd_passing": 2.0 * di * n / q * pad,
        "ssd_out": 2.0 * di * n * pad,
        "out_proj": 2.0 * di * d,
    }


def forward_flops_per_token(
    cfg: ModelConfig, out_dim: int, seq_len: int, head_kind: str = "linear"
) -> dict[str, float]:
    """{"embedding", "layers", "head", "total"} forward FLOPs per token."""
    check_resolved(cfg)
    embedding = 2.0 * (1 + cfg.n_pos_features) * cfg.width
    scans = 2 if cfg.direction == "bidirectional" else 1
    merge = 4.0 * cfg.width * cfg.width if scans == 2 and cfg.merge == "concat" else 0.0
    layers = cfg.n_layers * (scans * sum(layer_flops_terms(cfg, seq_len).values()) + merge)
    head = 2.0 * cfg.width * out_dim
    if head_kind == "order":
        d = cfg.width
        head += 2.0 * (1 + 2 * cfg.n_freq) * d + 8.0 * d * d
    return {"embedding": embedding, "layers": layers, "head": head, "total": embedding + layers + head}


def flops_per_token(cfg: ModelConfig, out_dim: int, seq_len: int, head_kind: str = "linear") -> float:
    """Training FLOPs (forward + backward) per token for sequences of `seq_len` tokens."""
    return 3.0 * forward_flops_per_token(cfg, out_dim, seq_len, head_kind)["total"]
