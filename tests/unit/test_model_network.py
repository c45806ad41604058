"""The point model: shapes, packing, mamba_ssm-compatible state_dict, bad input, configs, summary CLI."""

from __future__ import annotations

import pytest
import torch

from scaling.config import from_dict
from scaling.model import MODEL_FAMILY, ModelConfig, build_model, count_parameters, resolve_model_config
from scaling.model.__main__ import main as summary_main
from scaling.model.mamba2 import Mamba2Mixer, resolve_impl
from scaling.model.network import nerf_encoding


def _tiny(**kw: object) -> ModelConfig:
    return resolve_model_config(ModelConfig(name="tiny", chunk_size=8, **kw))


def _features(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, n, 4, generator=torch.Generator().manual_seed(seed))


def test_forward_and_backbone_shapes() -> None:
    torch.manual_seed(0)
    model = build_model(_tiny(), out_dim=90)
    x = torch.rand(2, 19, 4)
    assert model(x).shape == (2, 19, 90)
    assert model.backbone_features(x).shape == (2, 19, 32)
    model(x).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_packed_events_equal_separate_events() -> None:
    torch.manual_seed(0)
    model = build_model(_tiny(), out_dim=6)
    lengths = [7, 1, 20, 3]
    events = [_features(n, seed=i) for i, n in enumerate(lengths)]
    seq_idx = torch.repeat_interleave(torch.arange(4, dtype=torch.int32), torch.tensor(lengths)).unsqueeze(0)
    packed = model(torch.cat(events, dim=1), seq_idx)
    alone = torch.cat([model(e) for e in events], dim=1)
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    # without seq_idx the conv and the state leak across events
    assert not torch.allclose(model(torch.cat(events, dim=1)), alone, atol=1e-4)


@pytest.mark.parametrize("n", [0, 1])
def test_events_with_zero_or_one_token_run(n: int) -> None:
    model = build_model(_tiny(), out_dim=5)
    out = model(_features(n), torch.zeros(1, n, dtype=torch.int32))
    assert out.shape == (1, n, 5) and torch.isfinite(out).all()


def test_mixer_names_and_shapes_match_mamba_ssm() -> None:
    cfg = resolve_model_config(ModelConfig(name="custom", width=64, d_state=16, headdim=16, ngroups=2))
    sd = Mamba2Mixer(cfg).state_dict()
    d_in, gn, h = 128, 32, 8
    expected = {
        "dt_bias": (h,), "A_log": (h,), "D": (h,), "in_proj.weight": (2 * d_in + 2 * gn + h, 64),
        "conv1d.weight": (d_in + 2 * gn, 1, 4), "conv1d.bias": (d_in + 2 * gn,), "norm.weight": (d_in,),
        "out_proj.weight": (64, d_in),
    }  # fmt: skip
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    mixer = Mamba2Mixer(cfg)
    dt = torch.nn.functional.softplus(mixer.dt_bias)
    assert (dt > 9e-4).all() and (dt < 0.11).all()
    assert (-mixer.A_log.exp() <= -1).all() and (mixer.A_log.exp() <= 16).all()


def test_state_dict_round_trip_strict() -> None:
    torch.manual_seed(0)
    a, b = build_model(_tiny(), out_dim=4), build_model(_tiny(), out_dim=4)
    x = _features(12)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict(), strict=True)
    torch.testing.assert_close(a(x), b(x))
    # the split in_proj blocks (as a ZeRO fp32 export names them) load too
    split = {n: p.detach() for n, p in a.named_parameters()}
    b.load_state_dict(split, strict=True)
    torch.testing.assert_close(a(x), b(x))


def test_state_dict_from_another_width_is_one_clear_error() -> None:
    small = build_model(_tiny(), out_dim=4)
    wide = build_model(resolve_model_config(ModelConfig(name="custom", width=48, n_layers=2, d_state=16,
                                                        headdim=16)), out_dim=4)  # fmt: skip
    with pytest.raises(ValueError, match=r"embedding\.energy\.weight.*checkpoint width 48, model width 32"):
        small.load_state_dict(wide.state_dict())
    split = {n: p.detach() for n, p in wide.named_parameters() if n != "embedding.energy.weight"}
    with pytest.raises(ValueError, match=r"\S+ has shape .* checkpoint width 48, model width 32"):
        small.load_state_dict(split)


def test_bad_features_shape() -> None:
    model = build_model(_tiny(), out_dim=4)
    with pytest.raises(ValueError, match="features must have shape"):
        model(torch.rand(1, 5, 3))
    with pytest.raises(ValueError, match="seq_idx shape"):
        model(torch.rand(1, 5, 4), torch.zeros(1, 4, dtype=torch.int32))


def test_config_resolution_and_errors() -> None:
    assert resolve_model_config(ModelConfig(name="m5")).width == 1024
    assert resolve_model_config(ModelConfig(name="m1", width=64)).width == 64
    with pytest.raises(ValueError, match="model.width=100 contradicts model.name=m1"):
        resolve_model_config(ModelConfig(name="m1", width=100))
    with pytest.raises(ValueError, match="model.name='m9'"):
        ModelConfig(name="m9")
    with pytest.raises(ValueError, match="model.headdim=48 must divide"):
        resolve_model_config(ModelConfig(name="custom", width=64, headdim=48))
    with pytest.raises(ValueError, match="model.parameterization"):
        from_dict(ModelConfig, {"parameterization": "ntk"})


def test_an_unresolved_named_model_is_refused_not_resolved_again() -> None:
    from scaling.model import check_resolved
    from scaling.model.flops import flops_per_token

    with pytest.raises(ValueError, match=r"^model.name=m1: width not filled in; pass resolve_model_config"):
        build_model(ModelConfig(name="m1"), out_dim=4, device="meta")
    with pytest.raises(ValueError, match="n_layers, d_state, headdim not filled in"):
        flops_per_token(ModelConfig(name="tiny", width=32), 4, 64)
    resolved = resolve_model_config(ModelConfig(name="m1"))
    assert check_resolved(resolved) is resolved


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_mamba_ssm_impl_without_cuda_is_a_clear_error() -> None:
    assert resolve_impl(_tiny(impl="auto")) == "reference"
    with pytest.raises(ValueError, match="model.impl=mamba_ssm but no CUDA device"):
        build_model(_tiny(impl="mamba_ssm"), out_dim=4)


def test_parameter_count_matches_formula() -> None:
    for name in ("m1", "m3", "m6"):
        cfg = resolve_model_config(ModelConfig(name=name))
        d, di, n, h = cfg.width, cfg.d_inner, cfg.d_state, cfg.n_heads
        layer = d * (2 * di + 2 * n + h) + 5 * (di + 2 * n) + 3 * h + di + di * d + d
        embed = 2 * d + (cfg.n_pos_features + 1) * d
        counts = count_parameters(build_model(cfg, out_dim=90, device="meta"))
        assert counts["total"] == embed + cfg.n_layers * layer + d + 90 * d + 90
        assert counts["non_embedding"] == counts["total"] - embed
        ratio = counts["total"] / MODEL_FAMILY[name]["paper_params"]
        assert 0.9 < ratio < 1.1 or name == "m1"  # m1/m2 deviation explained in family.py


def test_nerf_encoding() -> None:
    p = torch.tensor([[0.25, 0.5, 1.0]])
    enc = nerf_encoding(p, 2)
    assert enc.shape == (1, 15)
    torch.testing.assert_close(enc[0, 3:5], torch.sin(torch.tensor([0.25, 0.5]) * torch.pi))


def test_summary_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert summary_main(["--summary"]) == 0
    out = capsys.readouterr().out
    for name in ("m1", "m6", "0.34M", "188.00M"):
        assert name in out
    assert summary_main(["--summary", "--seq-len", "0"]) == 2
