"""The chunked SSD equals a float64 step-by-step recurrence (outputs and gradients), packed or not."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scaling.model.ssd import causal_conv1d, segment_ids, ssd_chunked, ssd_recurrence

TOL = 1e-5  # required bound; the worst case seen over these cases is ~7e-7


def _inputs(b: int, length: int, h: int, p: int, g: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    x = torch.randn(b, length, h, p, generator=gen, dtype=f64)
    dt = F.softplus(torch.randn(b, length, h, generator=gen, dtype=f64) - 1.0)
    A = -torch.rand(h, generator=gen, dtype=f64) * 4 - 0.1
    B = torch.randn(b, length, g, n, generator=gen, dtype=f64)
    C = torch.randn(b, length, g, n, generator=gen, dtype=f64)
    D = torch.randn(h, generator=gen, dtype=f64)
    return [t.requires_grad_() for t in (x, dt, A, B, C, D)]


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.detach().double() - ref.detach()).abs().max() / ref.detach().abs().max().clamp_min(1e-12))


def _check(length: int, chunk: int, g: int, seq_idx: torch.Tensor | None, b: int = 2) -> None:
    ref_in = _inputs(b, length, 4, 3, g, 5)
    chk_in = [t.detach().float().requires_grad_() for t in ref_in]
    y_ref = ssd_recurrence(*ref_in, seq_idx=seq_idx)
    y = ssd_chunked(*chk_in, chunk_size=chunk, seq_idx=seq_idx)
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    assert _rel(y, y_ref) <= TOL
    weight = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    (y_ref * weight).sum().backward()
    (y * weight.float()).sum().backward()
    for name, a, r in zip("x dt A B C D".split(), chk_in, ref_in, strict=True):
        assert a.grad is not None and torch.isfinite(a.grad).all(), name
        assert _rel(a.grad, r.grad) <= TOL, f"gradient of {name}"


@pytest.mark.parametrize("chunk", [1, 4, 16, 64])
@pytest.mark.parametrize("length", [1, 16, 37])
def test_chunked_matches_recurrence(chunk: int, length: int) -> None:
    _check(length, chunk, g=1, seq_idx=None)


def test_chunked_matches_recurrence_with_groups() -> None:
    _check(29, 8, g=2, seq_idx=None)
    _check(29, 8, g=4, seq_idx=None)


@pytest.mark.parametrize("chunk", [4, 8, 64])
def test_chunked_matches_recurrence_packed(chunk: int) -> None:
    # boundaries inside chunks, on chunk edges, a 1-token event and a long one spanning chunks
    seq = [0] * 8 + [1] + [2] * 13 + [3] * 3 + [4] * 12
    seq_idx = torch.tensor([seq, sorted(seq, reverse=True)], dtype=torch.int32)
    _check(len(seq), chunk, g=2, seq_idx=seq_idx)


def test_packing_equals_running_events_separately() -> None:
    lengths = [5, 1, 17, 9]
    x, dt, A, B, C, D = (t.detach().float() for t in _inputs(1, sum(lengths), 4, 3, 2, 5, seed=3))
    seq_idx = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).unsqueeze(0)
    packed = ssd_chunked(x, dt, A, B, C, D, chunk_size=8, seq_idx=seq_idx)
    start = 0
    for n in lengths:
        sl = slice(start, start + n)
        alone = ssd_chunked(x[:, sl], dt[:, sl], A, B[:, sl], C[:, sl], D, chunk_size=8)
        torch.testing.assert_close(packed[:, sl], alone, rtol=1e-5, atol=1e-6)
        start += n
    # without seq_idx the later events do see the earlier ones: the reset is what makes them equal
    unpacked = ssd_chunked(x, dt, A, B, C, D, chunk_size=8)
    assert not torch.allclose(unpacked[:, 6:], packed[:, 6:], atol=1e-4)


def test_empty_sequence() -> None:
    x, dt, A, B, C, D = (t.detach().float() for t in _inputs(1, 0, 2, 3, 1, 4))
    assert ssd_chunked(x, dt, A, B, C, D, chunk_size=8).shape == (1, 0, 2, 3)


def test_causal_conv_matches_conv1d_and_does_not_cross_events() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 11, 6, generator=gen)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    expected = conv(x.transpose(1, 2))[..., :11].transpose(1, 2)
    torch.testing.assert_close(causal_conv1d(x, conv.weight, conv.bias, None), expected)
    seq_idx = torch.tensor([[0] * 4 + [1] * 7] * 2)
    seg = segment_ids(seq_idx, 2, 11, x.device)
    packed = causal_conv1d(x, conv.weight, conv.bias, seg)
    second = conv(x[:, 4:].transpose(1, 2))[..., :7].transpose(1, 2)
    torch.testing.assert_close(packed[:, 4:], second)
    torch.testing.assert_close(packed[:, :4], expected[:, :4])


def test_segment_ids_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match="seq_idx has shape"):
        segment_ids(torch.zeros(1, 5), 1, 6, torch.device("cpu"))
