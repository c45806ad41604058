"""The project's chunked SSD against the pure-torch SSD a CPU user would otherwise take: mamba-ssm's
`ssd_minimal_discrete`, same inputs, same outputs, speed ratio in one run.

    .venv/bin/python benchmarks/bench_model_ssd_peer.py            # 2048 tokens, width 256 (< 60 s)
    .venv/bin/python benchmarks/bench_model_ssd_peer.py --length 4096 --chunk 64 128 256 --repeats 5

mamba-ssm does not install on a CPU-only torch (see the field notes), so the peer is written here from its
published form (Dao & Gu 2024, "Transformers are SSMs", listing 1; mamba_ssm/modules/ssd_minimal.py): B and C
broadcast to every head, one four-operand einsum for the diagonal blocks, a chunk-level segment-sum for the
states passed between chunks, no packing (`seq_idx`) support. It takes dt folded into x and A, and D added
outside, as mamba-ssm's own tests call it. Shapes are the m3 layer's: d_model 256 -> d_inner 512 = 8 heads
of 64, d_state 128, one group. Goal from the issue: >= 1.5x faster at 2048 tokens, width 256.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

from scaling.model.ssd import ssd_chunked  # noqa: E402


def peer_segsum(a: Tensor) -> Tensor:
    """[..., i, j] = a[j+1] + ... + a[i] for j <= i, -inf above the diagonal (the peer's stable segsum)."""
    t = a.shape[-1]
    rows = a.unsqueeze(-1).expand(*a.shape, t)  # [..., i, j] = a[i]
    below = torch.ones(t, t, dtype=torch.bool, device=a.device).tril(-1)
    sums = torch.cumsum(rows.masked_fill(~below, 0.0), dim=-2)
    return sums.masked_fill(~torch.ones(t, t, dtype=torch.bool, device=a.device).tril(0), float("-inf"))


def peer_ssd(x: Tensor, a: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:
    """ssd_minimal_discrete: x (b, l, h, p) (already times dt), a (b, l, h) = dt * A, B, C (b, l, h, n)."""
    b, length, h, p = x.shape
    if length % chunk:
        raise ValueError(f"the peer needs the length ({length}) to be a multiple of the chunk ({chunk})")
    c = length // chunk
    x, B, C = (t.reshape(b, c, chunk, h, -1) for t in (x, B, C))
    a = a.reshape(b, c, chunk, h).permute(0, 3, 1, 2)  # (b, h, c, l)
    a_cum = torch.cumsum(a, dim=-1)
    decay = torch.exp(peer_segsum(a))  # (b, h, c, l, s)
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, decay, x)
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, h, c, l)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, to_end, x)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    across = torch.exp(peer_segsum(F.pad(a_cum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", across, states)[:, :-1]
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(a_cum))
    return (y_diag + y_off).reshape(b, length, h, p)


def inputs(length: int, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, p, n = 8, 64, 128
    x = torch.randn(1, length, h, p, generator=g)
    dt = F.softplus(torch.randn(1, length, h, generator=g) - 3)
    A = -torch.rand(h, generator=g) * 15 - 1
    B = torch.randn(1, length, 1, n, generator=g)
    C = torch.randn(1, length, 1, n, generator=g)
    D = torch.ones(h)
    return [t.requires_grad_() for t in (x, dt, A, B, C, D)]


def ours(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, chunk: int) -> Tensor:
    return ssd_chunked(x, dt, A, B, C, D, chunk_size=chunk)


def peer(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, chunk: int) -> Tensor:
    """The peer called as mamba-ssm's tests call it: dt folded in, groups expanded to heads, D outside."""
    h = x.shape[2]
    Bh, Ch = (t.expand(-1, -1, h, -1) for t in (B, C))  # one group -> every head
    y = peer_ssd(x * dt.unsqueeze(-1), dt * A, Bh, Ch, chunk)
    return y + x * D.view(1, 1, h, 1)


def time_pair(a: Callable[[], None], b: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median seconds of `repeats` calls of each, after one warm-up call each, the calls alternating so
    that load from other work on the machine falls on both alike."""
    a(), b()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def compare(length: int, chunk: int, repeats: int) -> tuple[float, float, float]:
    """(peer / ours time ratio fwd+bwd, forward only, max |y diff|) on the same inputs."""
    args = inputs(length)
    with torch.no_grad():
        y_ours, y_peer = ours(*args, chunk), peer(*args, chunk)
    diff = float((y_ours - y_peer).abs().max())
    grads = []
    for fn in (ours, peer):
        for t in args:
            t.grad = None
        fn(*args, chunk).square().sum().backward()
        grads.append([t.grad.clone() for t in args])
    grad_diff = max(
        float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in zip(*grads, strict=True)
    )

    def step(fn: Callable[..., Tensor]) -> Callable[[], None]:
        return lambda: fn(*args, chunk).square().sum().backward()

    def forward(fn: Callable[..., Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                fn(*args, chunk)

        return run

    t_ours, t_peer = time_pair(step(ours), step(peer), repeats)
    f_ours, f_peer = time_pair(forward(ours), forward(peer), repeats)
    print(f"  Q={chunk:4d}: fwd+bwd ours {t_ours * 1e3:7.1f} ms, peer {t_peer * 1e3:7.1f} ms, "
          f"ratio {t_peer / t_ours:.2f}x | fwd ours {f_ours * 1e3:6.1f} ms, peer {f_peer * 1e3:6.1f} ms, "
          f"ratio {f_peer / f_ours:.2f}x | max |dy| {diff:.2e} (max |y| {float(y_peer.abs().max()):.1f}), "
          f"max rel grad diff {grad_diff:.1e}", flush=True)  # fmt: skip
    return t_peer / t_ours, f_peer / f_ours, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=2048, help="tokens per sequence")
    parser.add_argument("--chunk", type=int, nargs="+", default=[64, 256], help="chunk sizes (both sides)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print(f"SSD, {args.length} tokens, width 256 (8 heads x 64, d_state 128), float32, CPU, "
          f"{torch.get_num_threads()} thread(s); ours = scaling.model.ssd.ssd_chunked, "
          "peer = ssd_minimal_discrete (published form):")  # fmt: skip
    for chunk in args.chunk:
        compare(args.length, chunk, args.repeats)


if __name__ == "__main__":
    main()
