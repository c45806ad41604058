"""`python -m scaling.model --summary`: the model family's sizes and training FLOPs per token."""

from __future__ import annotations

import argparse
import sys

import torch

from scaling.model.config import ModelConfig, resolve_model_config
from scaling.model.family import MODEL_FAMILY
from scaling.model.flops import flops_per_token
from scaling.model.network import build_model, count_parameters

FOOTNOTE = """\
Parameters counted exactly on the meta device; FLOPs are forward+backward per token at --seq-len tokens.
The paper's counts grow as ~80 x width^2 at every width, i.e. like the width-squared terms alone; the exact
count also holds the B/C projections (2 x d_state x width per layer) and their convolution, which matter at
small width (m1 +55 %, m2 +26 %) and fade at large width (m3-m6 within 10 %; the study's released largest
checkpoint holds 174.8M, within 1 % of m6 here).
The architecture (12 layers, d_state 128, head dim 64, expand 2) is the paper's."""


def summary_rows(out_dim: int, seq_len: int) -> list[dict]:
    rows = []
    for name, preset in MODEL_FAMILY.items():
        cfg = resolve_model_config(ModelConfig(name=name))
        model = build_model(cfg, out_dim, device="meta")
        counts = count_parameters(model)
        rows.append({
            "name": name, "width": cfg.width, "layers": cfg.n_layers, **counts,
            "flops_per_token": flops_per_token(cfg, out_dim, seq_len), "paper": preset.get("paper_params"),
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaling.model", description=__doc__)
    parser.add_argument("--summary", action="store_true", help="print the family table")
    parser.add_argument("--out-dim", type=int, default=90, help="head size (k-NNN with k = 30: 3k = 90)")
    parser.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence for the FLOPs")
    args = parser.parse_args(argv)
    if not args.summary:
        parser.print_help()
        return 2
    if args.out_dim < 1 or args.seq_len < 1:
        print("--out-dim and --seq-len must be positive", file=sys.stderr)
        return 2
    with torch.device("meta"):
        rows = summary_rows(args.out_dim, args.seq_len)
    print(f"{'model':6s} {'width':>6s} {'layers':>6s} {'params':>12s} {'non-embed':>12s} "
          f"{'GFLOP/token':>12s} {'paper':>8s} {'vs paper':>9s}")  # fmt: skip
    for r in rows:
        paper = f"{r['paper'] / 1e6:.2f}M" if r["paper"] else "-"
        dev = f"{100 * (r['total'] / r['paper'] - 1):+.0f}%" if r["paper"] else "-"
        print(f"{r['name']:6s} {r['width']:6d} {r['layers']:6d} {r['total']:12,d} {r['non_embedding']:12,d} "
              f"{r['flops_per_token'] / 1e9:12.4f} {paper:>8s} {dev:>9s}")  # fmt: skip
    print(FOOTNOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
