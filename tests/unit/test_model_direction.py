"""Backbone direction: causal vs bidirectional scans, event boundaries in packed sequences, mask token,
order-head, FLOPs of the extra scan."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scaling.model import ModelConfig, build_model, resolve_model_config
from scaling.model.flops import forward_flops_per_token, layer_flops_terms
from scaling.model.network import PointModel
from scaling.model.ssd import reverse_within_segments

LENGTHS = [7, 1, 20, 12]


def _model(direction: str, merge: str = "add", **kw: object) -> PointModel:
    torch.manual_seed(0)
    cfg = resolve_model_config(ModelConfig(name="tiny", chunk_size=8, direction=direction, merge=merge))
    return build_model(cfg, out_dim=5, **kw).double()


def _packed(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(1, sum(LENGTHS), 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    seq = torch.repeat_interleave(torch.arange(len(LENGTHS), dtype=torch.int32), torch.tensor(LENGTHS))
    return x, seq[None]


def _slow_reference(model: PointModel, x: torch.Tensor) -> torch.Tensor:
    """One event (1, n, 4) at a time, the reverse scan by torch.flip of the whole event."""
    h = model.embedding(x)
    for layer in model.layers:
        u = layer.norm(h)
        y = layer.mixer(u)
        if layer.mixer_rev is not None:
            y_rev = layer.mixer_rev(u.flip(1)).flip(1)
            y = y + y_rev if layer.merge is None else layer.merge(torch.cat([y, y_rev], -1))
        h = h + y
    return model.head(model.norm_f(h))


def test_reverse_index_stays_within_events() -> None:
    seq = torch.tensor([[0, 0, 0, 1, 2, 2]], dtype=torch.int32)
    assert reverse_within_segments(seq, 1, 6, torch.device("cpu")).tolist() == [[2, 1, 0, 3, 5, 4]]
    assert reverse_within_segments(None, 1, 4, torch.device("cpu")).tolist() == [[3, 2, 1, 0]]


@pytest.mark.parametrize(("direction", "merge"), [("causal", "add"), ("bidirectional", "add"),
                                                  ("bidirectional", "concat")])  # fmt: skip
def test_packed_matches_slow_reference(direction: str, merge: str) -> None:
    model = _model(direction, merge)
    x, seq = _packed()
    packed = model(x, seq)
    events = x.split(LENGTHS, dim=1)
    ref = torch.cat([_slow_reference(model, e) for e in events], dim=1)
    torch.testing.assert_close(packed, ref, rtol=1e-5, atol=1e-5)  # the SSD runs in float32


@pytest.mark.parametrize("direction", ["causal", "bidirectional"])
def test_dependence_on_later_points(direction: str) -> None:
    model = _model(direction)
    x, seq = _packed()
    i = 15  # inside the third event [8, 28)
    later = x.clone()
    later[:, i + 1 : 28] += 0.5  # later points of the same event
    other = x.clone()
    other[:, 28:] += 0.5  # the next event
    base = model(x, seq)
    moved = (model(later, seq) - base)[:, : i + 1].abs().max().item()
    if direction == "causal":
        assert moved == 0.0
    else:
        assert moved > 1e-4
    # no direction lets another event leak in
    assert (model(other, seq) - base)[:, :28].abs().max().item() == 0.0


def test_bidirectional_state_dict_keeps_mamba_names() -> None:
    sd = _model("bidirectional").state_dict()
    fwd = sorted(k.split("mixer.", 1)[1] for k in sd if k.startswith("layers.0.mixer."))
    rev = sorted(k.split("mixer_rev.", 1)[1] for k in sd if k.startswith("layers.0.mixer_rev."))
    assert fwd == rev and "in_proj.weight" in fwd
    causal = _model("causal")
    with pytest.raises(RuntimeError, match="mixer_rev"):
        causal.load_state_dict(sd)


def test_mask_token_hides_the_masked_points() -> None:
    model = _model("bidirectional", mask_token=True, head="order")
    x, seq = _packed()
    mask = torch.zeros(1, x.shape[1], dtype=torch.bool)
    mask[0, [2, 10, 11, 30]] = True
    changed = x.clone()
    changed[0, mask[0]] = torch.rand(int(mask.sum()), 4, dtype=x.dtype) * 5
    torch.testing.assert_close(model(x, seq, mask), model(changed, seq, mask), rtol=0, atol=0)
    assert (model(x, seq) - model(changed, seq)).abs().max() > 1e-3  # unmasked, the change shows
    with pytest.raises(ValueError, match="mask_token=True"):
        _model("causal")(x, seq, mask)


def test_order_head_sees_the_index() -> None:
    model = _model("bidirectional", head="order")
    x = torch.zeros(1, 6, 4, dtype=torch.float64)  # identical points: only the order head tells them apart
    out = model(x, torch.zeros(1, 6, dtype=torch.int32))
    assert (out[0, 0] - out[0, 3]).abs().max() > 1e-6
    plain = _model("bidirectional")(torch.zeros(1, 6, 4, dtype=torch.float64), None)
    assert plain.shape == out.shape


@pytest.mark.parametrize(("merge", "head"), [("add", "linear"), ("concat", "order")])
def test_bidirectional_flops_match_counter(merge: str, head: str) -> None:
    cfg = resolve_model_config(
        ModelConfig(name="custom", width=64, n_layers=2, d_state=32, headdim=16, chunk_size=16,
                    parameterization="standard", direction="bidirectional", merge=merge)
    )  # fmt: skip
    out_dim, batch, seq_len = 12, 2, 50
    torch.manual_seed(0)
    model = build_model(cfg, out_dim, head=head)
    with FlopCounterMode(display=False) as counter:
        model(torch.rand(batch, seq_len, 4)).square().mean().backward()
    counted = counter.get_total_flops() / (batch * seq_len)
    fwd = forward_flops_per_token(cfg, out_dim, seq_len, head)
    conv = 2 * layer_flops_terms(cfg, seq_len)["conv"] * cfg.n_layers  # two scans, invisible taps
    visible = 3 * (fwd["layers"] - conv + fwd["head"]) + 2 * fwd["embedding"]
    assert abs(counted / visible - 1) < 0.02, (counted, visible)
    causal_cfg = resolve_model_config(ModelConfig(**{**vars(cfg), "direction": "causal"}))
    causal = forward_flops_per_token(causal_cfg, out_dim, seq_len)
    assert fwd["layers"] > 1.9 * causal["layers"]
