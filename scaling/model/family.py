"""The model family of the reference study (FM4NPP): six widths of a 12-layer Mamba-2, plus test sizes.

`paper_params` is the count the paper quotes. It grows as ~80 * width**2 at every width (ratio 79-83), i.e.
it scales like the width-squared terms alone; the exact count also carries the d_state-dependent B and C
projections (2 * d_state * width per layer) and the convolution over them, which do not shrink with width.
From width 256 up the two agree within 10 % (the largest released checkpoint of the study holds
174.8M parameters, within 1 % of the exact count here); at width 64 the B/C rows are 38 % of a layer
and the exact count is
55 % above the quoted 0.34M (m2: 26 %). The architecture, not the count, is what is reproduced.

Torch-free: the report (analysis/report.py) and the launcher read it without the network.
"""

from __future__ import annotations

MODEL_FAMILY: dict[str, dict] = {
    # paper_params: the count the paper quotes; paper_gpu, paper_gpus, paper_hours: the accelerator, how many,
    # and the wall-clock hours the paper reports for the model's pretraining (analysis/report.py sets ours
    # beside them)
    "m1": {"width": 64, "paper_params": 0.34e6, "paper_gpu": "H100", "paper_gpus": 1, "paper_hours": 10},
    "m2": {"width": 128, "paper_params": 1.3e6, "paper_gpu": "H100", "paper_gpus": 1, "paper_hours": 12},
    "m3": {"width": 256, "paper_params": 5.3e6, "paper_gpu": "A100", "paper_gpus": 4, "paper_hours": 20},
    "m4": {"width": 512, "paper_params": 21e6, "paper_gpu": "A100", "paper_gpus": 8, "paper_hours": 32},
    "m5": {"width": 1024, "paper_params": 84e6, "paper_gpu": "A100", "paper_gpus": 24, "paper_hours": 50},
    "m6": {"width": 1536, "paper_params": 188e6, "paper_gpu": "A100", "paper_gpus": 64, "paper_hours": 72},
    # Test sizes: a forward+backward in milliseconds on one CPU core.
    "tiny": {"width": 32, "n_layers": 2, "d_state": 16, "headdim": 16},
    "small": {"width": 64, "n_layers": 4, "d_state": 32, "headdim": 32},
}


def paper_family() -> dict[str, dict]:
    """The models the paper trained (those with a quoted parameter count), in order: m1-m6."""
    return {name: preset for name, preset in MODEL_FAMILY.items() if "paper_params" in preset}
