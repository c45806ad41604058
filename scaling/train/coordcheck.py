"""The muP coordinate check: activation sizes across widths after the first Adam steps, muP against standard.

    python -m scaling.train.coordcheck --widths 64,128,256,512,1024 --steps 5 --out DIR

Writes DIR/coordcheck.json (sizes per width, probe and step; each probe's log-log slope against width at the
last step) and DIR/coordcheck.png, and prints the slopes: near 0 under muP, growing under standard. The word
`coordcheck` may precede the options (`python -m scaling.train.coordcheck coordcheck --widths ...`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from scaling.model.config import ModelConfig
from scaling.train.param_groups import build_param_groups

log = logging.getLogger(__name__)


# Probed outputs. The gated RMSNorm inside the mixer is left out: its size is fixed by construction.
# Sizes are averaged over a few initialisation seeds before the slope is fitted: with one seed the slope of
# a probe moves by +-0.05 between seeds (out_proj: -0.05 to -0.10 over widths 64-512), so a single-seed check
# passes or fails by luck. What remains after averaging (out_proj and the residual stream about -0.06 to
# -0.08, against +0.2 to +0.25 under the standard parameterisation) sits mostly at the narrowest width, where
# out_proj's input has few heads: the normalised head outputs are uneven (dt is drawn per head over two
# decades), and out_proj's Adam update scales with the mean |.| of that input, not its RMS. It is not the
# learning-rate rule: training out_proj alone with lr ~ 1/fan_in gives the same shape, Adam's eps and the
# B/C rule change nothing, and equal dt across heads removes a third of it.
PROBES = {
    "embedding": lambda n: n == "embedding",
    "in_proj": lambda n: n.endswith("mixer.in_proj"),
    "out_proj": lambda n: n.endswith("mixer.out_proj"),
    "block": lambda n: n.startswith("layers.") and n.count(".") == 1,
    "head": lambda n: n == "head",
}


def _probe_config(width: int, parameterization: str, base_width: int) -> ModelConfig:
    return ModelConfig(
        name="custom", width=width, n_layers=2, d_state=16, headdim=16, chunk_size=64, n_freq=4,
        parameterization=parameterization, base_width=base_width, impl="reference",
    )  # fmt: skip


def coord_sizes(
    width: int, parameterization: str, *, steps: int, lr: float = 3e-3, base_width: int = 256, seed: int = 0
) -> dict[str, list[float]]:
    """Mean |activation| per probe after 0..steps Adam steps on a fixed synthetic regression batch."""
    from scaling.model.network import build_model

    torch.manual_seed(seed)
    cfg = _probe_config(width, parameterization, base_width)
    model = build_model(cfg, out_dim=8)
    gen = torch.Generator().manual_seed(1234)  # the same batch at every width
    features = torch.rand(2, 96, 4, generator=gen)  # (B, L, 4)
    target = torch.randn(2, 96, 8, generator=gen)
    opt = torch.optim.AdamW(build_param_groups(model, cfg, lr, 0.0))
    sizes: dict[str, list[float]] = {k: [] for k in PROBES}
    current: dict[str, list[float]] = {}

    def hook(kind: str):  # noqa: ANN202
        return lambda _m, _i, out: current.setdefault(kind, []).append(out.detach().abs().mean().item())

    for name, module in model.named_modules():
        for kind, match in PROBES.items():
            if match(name):
                module.register_forward_hook(hook(kind))
    for step in range(steps + 1):
        current.clear()
        loss = torch.nn.functional.mse_loss(model(features), target)
        for kind in PROBES:
            sizes[kind].append(sum(current[kind]) / len(current[kind]))
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return sizes


def loglog_slope(widths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(width)."""
    x = torch.log(torch.tensor(widths, dtype=torch.float64))
    y = torch.log(torch.tensor(values, dtype=torch.float64))
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def coordcheck(widths: list[int], steps: int, lr: float = 3e-3, seeds: int = 3) -> dict:
    """{parameterization: {"sizes": {width: {probe: [..]}}, "slopes": {probe: slope at the last step}}}, the
    sizes averaged over `seeds` initialisations (the same seeds at every width)."""
    table: dict = {}
    for param in ("mup", "standard"):
        sizes = {w: _mean_sizes(w, param, steps=steps, lr=lr, seeds=seeds) for w in widths}
        slopes = {k: loglog_slope(widths, [sizes[w][k][-1] for w in widths]) for k in PROBES}
        table[param] = {"sizes": {str(w): s for w, s in sizes.items()}, "slopes": slopes}
    return {"widths": widths, "steps": steps, "lr": lr, "seeds": seeds, "results": table}


def _mean_sizes(width: int, parameterization: str, *, steps: int, lr: float, seeds: int) -> dict:
    runs = [coord_sizes(width, parameterization, steps=steps, lr=lr, seed=seed) for seed in range(seeds)]
    return {k: [sum(run[k][i] for run in runs) / seeds for i in range(steps + 1)] for k in PROBES}


def plot_coordcheck(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = table["widths"]
    fig, axes = plt.subplots(2, len(PROBES), figsize=(3 * len(PROBES), 6), sharex=True)
    for row, param in enumerate(("mup", "standard")):
        sizes = table["results"][param]["sizes"]
        for col, kind in enumerate(PROBES):
            ax = axes[row][col]
            for step in range(table["steps"] + 1):
                ax.plot(widths, [sizes[str(w)][kind][step] for w in widths], marker="o", label=f"step {step}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{param}: {kind}", fontsize=9)
            ax.set_xlabel("width")
    axes[0][0].set_ylabel("mean |activation|")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from scaling.atomic import write_json_atomic

    parser = argparse.ArgumentParser(
        prog="python -m scaling.train.coordcheck", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", nargs="?", choices=("coordcheck",), help="optional; the only command")
    parser.add_argument("--widths", default="64,128,256,512,1024", help="comma-separated widths")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, default=3, help="initialisations averaged per width")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for coordcheck.json and coordcheck.png"
    )
    args = parser.parse_args(argv)
    try:
        widths = [int(w) for w in args.widths.split(",")]
        if any(w < 16 or w % 8 for w in widths) or args.steps < 1 or args.seeds < 1:
            raise ValueError
    except ValueError:
        msg = (
            f"--widths {args.widths!r} / --steps {args.steps} / --seeds {args.seeds}: "
            "widths multiples of 8 and >= 16, steps >= 1, seeds >= 1"
        )
        print(msg, file=sys.stderr)
        return 2
    table = coordcheck(widths, args.steps, args.lr, args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "coordcheck.json", table)
    plot_coordcheck(table, args.out / "coordcheck.png")
    for param in ("mup", "standard"):
        slopes = table["results"][param]["slopes"]
        print(f"{param:9s} log-log slope vs width: " + ", ".join(f"{k} {v:+.2f}" for k, v in slopes.items()))
    print(f"wrote {args.out / 'coordcheck.json'} and {args.out / 'coordcheck.png'}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())


__all__ = ["PROBES", "coord_sizes", "coordcheck", "loglog_slope", "main"]
