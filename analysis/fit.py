"""Scaling-law fits with bootstrap intervals: model size, data, compute frontier, and the joint law.

    python -m analysis.fit runs/model_scaling/ --law model --json fit.json --bootstrap 1000 --seed 0
    python -m analysis.fit table.csv --law joint --out fits/
    python -m analysis.fit runs/model_scaling/ runs/data_scaling/ --law joint   # several sweeps, one fit

Laws (all fitted in log space; each one registered definition in `analysis.laws`, with the optimisers):
  model    L(N) = A·N^(−α) [+ E] over the final (or best) validation loss vs non-embedding parameters;
  data     L(D) = A·D^(−α) [+ E] over training tokens (or events);
  compute  the compute frontier: the lower envelope of every run's validation curve against cumulative FLOPs
           (C_min, FM4NPP Figure 4c; Kaplan et al. 2020 Figure 1), fitted as A·C^(−α) [+ E];
  joint    L(N, D) = E + A/N^α + B/D^β (Huber on log loss, L-BFGS-B from a grid), with the compute-optimal
           allocation under C = 6ND: N_opt ∝ C^(β/(α+β)), D_opt ∝ C^(α/(α+β)). Each completed run gives one
           (N, D, L) point per budget checkpoint (the tokens seen and validation loss there), so one model-
           scaling sweep already spans N and D; the bootstrap resamples runs, keeping a run's points together.
Cooldown branches of WSD runs (`schedule.cooldown_branches`, rows of branches.jsonl) are completed cooldowns:
each is a point of the compute frontier and of the joint law (`source` cooldown_branch, named
`<run>@cooldown<step>`), resampled with its run; a run with branches gives the joint law its branches and its
final point, not its stable-phase budget checkpoints (taken at the peak LR, never cooled down).
The irreducible term E of a single-variable law is kept when it lowers the small-sample Akaike criterion
(AICc) and is not at its lower bound (`--irreducible auto`, default), or forced with `yes`/`no`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from analysis.laws import REGISTRY, FitRequest
from analysis.laws.base import best_per_value
from analysis.laws.compute import fit_compute_law
from analysis.laws.joint import JOINT_FIX, check_joint_points, fit_joint_law, joint_points
from analysis.laws.power import fit_single_law
from analysis.result import LawFit
from analysis.runs import Sweep, load_sources

log = logging.getLogger(__name__)
__all__ = [
    "JOINT_FIX",
    "LOSS_KEYS",
    "best_per_value",
    "check_joint_points",
    "fit_compute_law",
    "fit_joint_law",
    "fit_single_law",
    "fit_source",
    "format_fit",
    "joint_points",
    "main",
]


# --loss -> the RunRecord field fitted: the validation loss, or its ratio to the objective's lookup baseline
LOSS_KEYS = {
    "final": "final_val_loss",
    "best": "best_val_loss",
    "val_loss_ratio": "final_val_loss_ratio",
    "best_val_loss_ratio": "best_val_loss_ratio",
}


def fit_source(
    sweep: Sweep,
    law: str,
    *,
    loss: str = "final",
    x_data: str = "tokens",
    irreducible: str = "auto",
    n_boot: int = 1000,
    seed: int = 0,
) -> LawFit:
    """Pick the points a law needs from a sweep (or table) and fit it; notes say what was assumed."""
    definition = REGISTRY.lookup(law)
    if loss not in LOSS_KEYS:
        raise ValueError(f"--loss {loss}: choose one of {', '.join(LOSS_KEYS)}")
    req = FitRequest(
        sweep=sweep,
        loss=loss,
        loss_key=LOSS_KEYS[loss],
        x_data=x_data,
        irreducible=irreducible,
        n_boot=n_boot,
        seed=seed,
        excluded=[{"name": n, "reason": r} for n, r in sweep.excluded],
        notes=list(sweep.notes),
    )
    fit = definition.fit(req)
    fit.excluded, fit.notes = req.excluded, req.notes + fit.notes
    return fit


def format_fit(fit: LawFit) -> str:
    """The CLI's report: a warning first when the fit cannot be trusted, then parameters with intervals."""
    lines = [f"law: {fit.law}   {fit.formula}   ({fit.n_points} points; x = {fit.x}; loss = {fit.loss})"]
    if not fit.converged:
        lines.append("WARNING: the fit did NOT converge; the values below are not estimates")
    if fit.at_bound:
        lines.append(
            f"WARNING: parameter(s) {', '.join(fit.at_bound)} at a bound of the search box; "
            "the values below are not estimates (the law may not describe these points)"
        )
    if fit.selection:
        lines.append(f"selection: {fit.selection}")
    for name, value in fit.params.items():
        lo, hi = fit.ci95.get(name, [math.nan, math.nan])
        lines.append(f"  {name:>6} = {value:.6g}   95% CI [{lo:.6g}, {hi:.6g}]")
    for name in ("a", "b", "G"):
        if name in fit.derived:
            lo, hi = fit.ci95.get(name, [math.nan, math.nan])
            lines.append(f"  {name:>6} = {fit.derived[name]:.6g}   95% CI [{lo:.6g}, {hi:.6g}]")
    if "a" in fit.derived:
        lines.append(f"  compute-optimal: N_opt ~ C^{fit.derived['a']:.4f}, D_opt ~ C^{fit.derived['b']:.4f}")
    lines.append(f"goodness: R2(log) = {fit.r2_log:.5f}, RMS log residual = {fit.rms_log_residual:.3g}")
    lines.append(f"bootstrap: {fit.n_bootstrap} resamples of runs, {fit.n_bootstrap_failed} failed (dropped)")
    for seg in fit.derived.get("optimal_runs", []):
        lines.append(
            f"  optimal {seg['flops_from']:.3g}..{seg['flops_to']:.3g} FLOPs: {seg['run']} ({seg['model']})"
        )
    lines += [f"excluded: {e['name']} ({e['reason']})" for e in fit.excluded]
    lines += [f"note: {n}" for n in fit.notes]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.fit", description=__doc__.split("\n")[0])
    parser.add_argument(
        "source",
        type=Path,
        nargs="+",
        help="sweep folder(s) runs/<sweep>/ or CSV(s) with params,tokens,loss[,flops]; fitted as one",
    )
    parser.add_argument("--law", required=True, choices=REGISTRY.names())
    parser.add_argument("--out", type=Path, help="folder for fit.json and the plot (PNG and PDF)")
    parser.add_argument("--json", type=Path, help="write the fit as JSON here")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of runs (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--loss",
        choices=tuple(LOSS_KEYS),
        default="final",
        help="final or best val loss, or the final (val_loss_ratio) or best ratio to the lookup baseline",
    )
    parser.add_argument("--x-data", choices=("tokens", "events"), default="tokens", help="data law's x axis")
    parser.add_argument(
        "--irreducible",
        choices=("auto", "yes", "no"),
        default="auto",
        help="irreducible term E of single-variable laws (auto: AICc)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sweep = load_sources(args.source)
        fit = fit_source(
            sweep,
            args.law,
            loss=args.loss,
            x_data=args.x_data,
            irreducible=args.irreducible,
            n_boot=args.bootstrap,
            seed=args.seed,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_fit(fit))
    from scaling.atomic import write_json_atomic

    if args.json:
        write_json_atomic(args.json, fit.to_json())
    if args.out:
        from analysis import plots

        write_json_atomic(args.out / f"fit_{args.law}.json", fit.to_json())
        for path in plots.plot_law(sweep, fit, args.out):
            print(f"wrote {path}")
    return 0 if fit.reliable else 1


if __name__ == "__main__":
    sys.exit(main())
