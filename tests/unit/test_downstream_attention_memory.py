"""Adapter inference on large events: PyTorch's native attention fast path (eval mode, no grad) writes the
whole [heads, L, L] matrix, which killed 8-event predictions of sPHENIX-like events with pile-up (12 GB).
`predict` runs without it; same numbers, a fraction of the memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from analysis.downstream.adapters import _point_encoder
from analysis.downstream.config import AdapterConfig
from analysis.downstream.train import memory_efficient_attention

REPO = Path(__file__).resolve().parents[2]
PEAK = """
import contextlib, json, resource, sys, torch
from analysis.downstream.adapters import _point_encoder
from analysis.downstream.config import AdapterConfig
from analysis.downstream.train import memory_efficient_attention
torch.set_num_threads(1)
enc = _point_encoder(AdapterConfig(d_proj=32, n_heads=4, depth=1, mlp_hidden=64)).eval()
x, pad = torch.randn(1, 6000, 32), torch.zeros(1, 6000, dtype=torch.bool)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad(), (memory_efficient_attention() if sys.argv[1] == "on" else contextlib.nullcontext()):
    enc(x, src_key_padding_mask=pad)
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024))
"""


def _peak_mb(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PEAK, mode], cwd=REPO, capture_output=True, text=True, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def test_inference_on_a_6000_point_event_stays_small() -> None:
    on, off = _peak_mb("on"), _peak_mb("off")
    assert on < 400, f"inference grew the process by {on:.0f} MB"
    assert off > 2 * on, (
        f"the fast path ({off:.0f} MB) no longer costs more than {on:.0f} MB: drop the workaround"
    )


def test_same_outputs_and_the_switch_is_restored() -> None:
    torch.manual_seed(0)
    enc = _point_encoder(AdapterConfig(d_proj=32, n_heads=4, depth=1, mlp_hidden=64)).eval()
    x, pad = torch.randn(2, 50, 32), torch.zeros(2, 50, dtype=torch.bool)
    pad[1, 30:] = True
    before = torch.backends.mha.get_fastpath_enabled()
    with torch.no_grad():
        fast = enc(x, src_key_padding_mask=pad)
        with memory_efficient_attention():
            assert not torch.backends.mha.get_fastpath_enabled()
            slow = enc(x, src_key_padding_mask=pad)
    assert torch.backends.mha.get_fastpath_enabled() == before
    valid = ~pad
    assert torch.allclose(fast[valid], slow[valid], atol=1e-5)
