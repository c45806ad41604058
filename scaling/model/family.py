"""The model family of the reference study (FM4NPP): six widths of a 12-layer Mamba-2, plus test sizes.

`paper_params` is the count the paper quotes. It grows as ~80 * width**2 at every width (ratio 79-83), i.e.
it scales like the width-squared terms alone; the exact count also carries the d_state-dependent B and C
projections (2 * d_state * width per layer) and the convolution over them, which do not shrink with width.
From width 256 up the two agree within 10 % (the largest released checkpoint of the study holds
174.8M parameters, within 1 % of the exact count here); at width 64 the B/C rows are 38 % of a layer
and the exact count is
55 % above the quoted 0.34M (m2: 26 %). The architecture, not the count, is what is reproduced.
"""

from __future__ import annotations

MODEL_FAMILY: dict[str, dict] = {
    "m1": {"width": 64, "paper_params": 0.34e6},
    "m2": {"width": 128, "paper_params": 1.3e6},
    "m3": {"width": 256, "paper_params": 5.3e6},
    "m4": {"width": 512, "paper_params": 21e6},
    "m5": {"width": 1024, "paper_params": 84e6},
    "m6": {"width": 1536, "paper_params": 188e6},
    # Test sizes: a forward+backward in milliseconds on one CPU core.
    "tiny": {"width": 32, "n_layers": 2, "d_state": 16, "headdim": 16},
    "small": {"width": 64, "n_layers": 4, "d_state": 32, "headdim": 32},
}
