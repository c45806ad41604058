"""mamba_ssm's fused kernels against the pure-torch reference path (needs CUDA and mamba_ssm)."""

from __future__ import annotations

import pytest
import torch

from scaling.model import ModelConfig, build_model, resolve_model_config

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("ngroups", [1, 2])
def test_mamba_ssm_matches_reference(ngroups: int) -> None:
    pytest.importorskip("mamba_ssm")
    cfg = dict(name="custom", width=128, n_layers=2, d_state=64, headdim=32, ngroups=ngroups, chunk_size=64)
    torch.manual_seed(0)
    ref = build_model(resolve_model_config(ModelConfig(**cfg, impl="reference")), 12, device="cuda")
    fused = build_model(resolve_model_config(ModelConfig(**cfg, impl="mamba_ssm")), 12, device="cuda")
    assert type(fused.layers[0].mixer).__module__.startswith("mamba_ssm")
    fused.load_state_dict(ref.state_dict(), strict=True)  # weights move between the paths
    ref.load_state_dict(fused.state_dict(), strict=True)
    lengths = [100, 1, 230, 45]
    x = torch.rand(1, sum(lengths), 4, device="cuda")
    seq_idx = torch.repeat_interleave(torch.arange(4), torch.tensor(lengths)).to("cuda", torch.int32)[None]
    y_ref, y_fused = ref(x, seq_idx), fused(x, seq_idx)
    err = (y_ref - y_fused).abs().max().item() / y_ref.abs().max().item()
    print(f"mamba_ssm vs reference, ngroups {ngroups}: max relative error {err:.2e}")
    assert err < 2e-3  # TF32 matmuls in the kernels
    y_ref.square().mean().backward()
    y_fused.square().mean().backward()
    fused_params = dict(fused.named_parameters())
    for name, a in ref.named_parameters():
        b = fused_params[name]
        assert b.grad is not None
        rel = (a.grad - b.grad).abs().max() / a.grad.abs().max().clamp_min(1e-12)
        assert rel < 1e-2, f"gradient of {name}: relative error {rel:.2e}"


@pytest.mark.parametrize("merge", ["add", "concat"])
def test_mamba_ssm_bidirectional_matches_reference(merge: str) -> None:
    """The reverse scan is a gather outside the mixer, so both paths share it; packed events stay apart."""
    pytest.importorskip("mamba_ssm")
    cfg = dict(name="custom", width=128, n_layers=2, d_state=64, headdim=32, chunk_size=64,
               direction="bidirectional", merge=merge)  # fmt: skip
    torch.manual_seed(0)
    ref = build_model(resolve_model_config(ModelConfig(**cfg, impl="reference")), 12, device="cuda")
    fused = build_model(resolve_model_config(ModelConfig(**cfg, impl="mamba_ssm")), 12, device="cuda")
    assert type(fused.layers[0].mixer_rev).__module__.startswith("mamba_ssm")
    fused.load_state_dict(ref.state_dict(), strict=True)
    lengths = [100, 1, 230, 45]
    x = torch.rand(1, sum(lengths), 4, device="cuda")
    seq_idx = torch.repeat_interleave(torch.arange(4), torch.tensor(lengths)).to("cuda", torch.int32)[None]
    y_ref, y_fused = ref(x, seq_idx), fused(x, seq_idx)
    err = (y_ref - y_fused).abs().max().item() / y_ref.abs().max().item()
    print(f"bidirectional ({merge}) mamba_ssm vs reference: max relative error {err:.2e}")
    assert err < 2e-3  # TF32 matmuls in the kernels
    later = x.clone()
    later[:, 50:100] += 0.5  # later points of the first event move its earlier outputs, nothing else
    moved = (fused(later, seq_idx) - y_fused).abs()
    assert moved[:, :50].max() > 1e-4 and moved[:, 100:].max() == 0
