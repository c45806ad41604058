"""Scaling-law fits with bootstrap intervals: model size, data, compute frontier, and the joint law.

    python -m analysis.fit runs/model_scaling/ --law model --json fit.json --bootstrap 1000 --seed 0
    python -m analysis.fit table.csv --law joint --out fits/
    python -m analysis.fit runs/model_scaling/ runs/data_scaling/ --law joint   # several sweeps, one fit

Laws (all fitted in log space; see `analysis.laws` for the optimisers):
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
import dataclasses
import logging
import math
import sys
from pathlib import Path

import numpy as np

from analysis import laws
from analysis.bootstrap import Progress, aicc, expanded_tail, goodness, percentile_interval, resample_weights
from analysis.frontier import compute_frontier, frontier_resample
from analysis.result import LawFit, check_points
from analysis.runs import RunRecord, Sweep, load_sources

log = logging.getLogger(__name__)
LAWS = ("model", "data", "compute", "joint")


def _single_params(theta: np.ndarray, irreducible: bool) -> dict[str, np.ndarray]:
    out = {"A": np.exp(theta[:, 0]), "alpha": theta[:, 1]}
    if irreducible:
        out["E"] = np.exp(theta[:, 2])
    return out


def _single_fit(lx: np.ndarray, ly: np.ndarray, w: np.ndarray, irreducible: bool) -> laws.CoreFit:
    return laws.fit_power_with_e(lx, ly, w) if irreducible else laws.fit_pure_power(lx, ly, w)


def _usable_theta(fit: laws.CoreFit) -> np.ndarray:
    """(B, k) fitted rows, NaN where the fit did not converge or ended at a bound (dropped from intervals)."""
    ok = fit.converged & np.array([not b for b in fit.at_bound], dtype=bool)
    return np.where(ok[:, None], fit.theta, np.nan)


def _intervals(samples: dict[str, np.ndarray], n_points: int, n_params: int) -> dict[str, list[float]]:
    """95 % expanded percentile interval of each parameter's bootstrap samples."""
    tail = expanded_tail(n_points, n_params)
    return {name: percentile_interval(s, tail) for name, s in samples.items()}


def _choose_irreducible(lx: np.ndarray, ly: np.ndarray, mode: str) -> tuple[bool, str]:
    if mode in ("yes", "no"):
        return (
            mode == "yes",
            f"irreducible term {'forced' if mode == 'yes' else 'left out'} (--irreducible {mode})",
        )
    one = np.ones((1, lx.size))
    pure, with_e = laws.fit_pure_power(lx, ly, one), laws.fit_power_with_e(lx, ly, one)
    a_pure, a_e = aicc(float(pure.sse[0]), lx.size, 2), aicc(float(with_e.sse[0]), lx.size, 3)
    keep = bool(with_e.converged[0]) and not with_e.at_bound[0] and a_e < a_pure
    return keep, f"AICc without E {a_pure:.2f}, with E {a_e:.2f}: E {'kept' if keep else 'left out'}"


def fit_single_law(
    law: str,
    names: list[str],
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_name: str,
    loss_name: str,
    irreducible: str = "auto",
    n_boot: int = 1000,
    seed: int = 0,
) -> LawFit:
    """L = A·x^(−α) [+ E] with bootstrap intervals over the points (runs)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    check_points(names, {x_name: x, loss_name: y}, 3 if irreducible == "yes" else 2)
    lx, ly = np.log(x), np.log(y)
    use_e, selection = _choose_irreducible(lx, ly, irreducible)
    point = _single_fit(lx, ly, np.ones((1, lx.size)), use_e)
    params = {k: float(v[0]) for k, v in _single_params(point.theta, use_e).items()}
    k = 3 if use_e else 2
    samples, n_failed = _bootstrap_single(lx, ly, use_e, n_boot, seed, min_distinct=k)
    pred = np.log(params["A"] * x ** -params["alpha"] + params.get("E", 0.0))
    sym = {"model": "N", "data": "D", "compute": "C"}[law]
    return LawFit(
        law=law,
        formula=f"L({sym}) = A*{sym}^-alpha" + (" + E" if use_e else ""),
        params=params,
        ci95=_intervals(samples, len(names), k),
        n_points=len(names),
        converged=bool(point.converged[0]),
        at_bound=point.at_bound[0],
        **goodness(ly, pred),
        x=x_name,
        loss=loss_name,
        irreducible=use_e,
        selection=selection,
        n_bootstrap=n_boot,
        n_bootstrap_failed=n_failed,
        boot={n: s.tolist() for n, s in samples.items()},
        points=[
            {"name": n, x_name: float(a), loss_name: float(b)} for n, a, b in zip(names, x, y, strict=True)
        ],
    )


def _bootstrap_single(
    lx: np.ndarray, ly: np.ndarray, use_e: bool, n_boot: int, seed: int, min_distinct: int
) -> tuple[dict[str, np.ndarray], int]:
    if n_boot <= 0:
        return {}, 0
    w = resample_weights(lx.size, n_boot, seed, min_distinct=min_distinct)
    progress = Progress("bootstrap", n_boot)
    parts = []
    for chunk in np.array_split(np.arange(n_boot), min(10, n_boot)):  # ~10 % chunks for progress output
        parts.append(_usable_theta(_single_fit(lx, ly, w[chunk], use_e)))
        progress(int(chunk[-1]) + 1)
    theta = np.concatenate(parts)
    failed = int(np.isnan(theta).any(1).sum())
    return _single_params(theta, use_e), failed


def fit_joint_law(
    names: list[str],
    n: np.ndarray,
    d: np.ndarray,
    y: np.ndarray,
    *,
    loss_name: str,
    n_boot: int = 1000,
    seed: int = 0,
    delta: float = laws.HUBER_DELTA,
    groups: np.ndarray | None = None,
) -> LawFit:
    """L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022 Approach 3; Besiroglu et al. 2024).

    `groups[i]` is the run of point i (points of one run are resampled together); default: a run each."""
    n, d, y = (np.asarray(v, float) for v in (n, d, y))
    check_joint_points(names, n, d)
    check_points(names, {"params": n, "tokens": d, "loss": y}, 5)
    groups = np.arange(n.size) if groups is None else np.asarray(groups)
    ln, ld, ll = np.log(n), np.log(d), np.log(y)
    point = laws.fit_joint_batch(ln, ld, ll, np.ones((1, n.size)), delta=delta)
    theta = point.theta[0]
    boot_theta = np.empty((0, 5))
    if n_boot > 0:
        n_groups = int(groups.max()) + 1
        # a resample must identify 5 parameters: 6 distinct points, or 3 distinct runs of several points each
        # (asking all of a few runs to be present would leave only the original sample: a zero-width interval)
        distinct = min(6, n_groups) if n_groups == n.size else min(3, n_groups)
        w_runs = resample_weights(n_groups, n_boot, seed, min_distinct=distinct)
        w = w_runs[:, groups]  # (B, points): each point weighs as often as its run was drawn
        fit = laws.fit_joint_batch(
            ln, ld, ll, w, delta=delta, warm=theta, progress=Progress("bootstrap", n_boot)
        )
        boot_theta = _usable_theta(fit)
    samples = _joint_params(boot_theta)
    params = {k: float(v[0]) for k, v in _joint_params(theta[None, :]).items()}
    pred = np.log(params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"])
    derived = {
        "compute_optimal": "C = 6 N D; N_opt = G (C/6)^a, D_opt = (C/6)^b / G",
        **{k: params.pop(k) for k in ("a", "b", "G")},
    }
    return LawFit(
        law="joint",
        formula="L(N, D) = E + A/N^alpha + B/D^beta",
        params=params,
        ci95=_intervals(samples, len(names), 5),
        n_points=len(names),
        converged=bool(point.converged[0]),
        at_bound=point.at_bound[0],
        **goodness(ll, pred),
        x="params_non_embedding, tokens",
        loss=loss_name,
        n_bootstrap=n_boot,
        n_bootstrap_failed=int(np.isnan(boot_theta).any(1).sum()),
        derived=derived,
        selection=f"Huber delta {delta:g} on log loss; L-BFGS-B from the best of a grid of starts",
        boot={k: s.tolist() for k, s in samples.items()},
        points=[
            {"name": a, "params": float(b), "tokens": float(c), loss_name: float(e)}
            for a, b, c, e in zip(names, n, d, y, strict=True)
        ],
    )


JOINT_FIX = (
    "give runs with budget checkpoints (budget.checkpoint_fractions, e.g. [0.25, 0.5, 1.0]: a point each), "
    "runs of several sizes, or several sweep folders in one call (python -m analysis.fit runs/model_scaling/ "
    "runs/data_scaling/ --law joint)"
)


def check_joint_points(names: list[str], n: np.ndarray, d: np.ndarray) -> None:
    """The joint law's 5 parameters need >= 6 points spanning >= 2 model sizes and >= 2 token counts."""
    sizes, tokens = np.unique(n[np.isfinite(n)]).size, np.unique(d[np.isfinite(d)]).size
    if len(names) < 6 or sizes < 2 or tokens < 2:
        raise ValueError(
            f"{len(names)} (N, D) point(s) from {sizes} model size(s) and {tokens} token count(s): the joint "
            f"law has 5 parameters and needs at least 6 points, 2 sizes and 2 token counts; {JOINT_FIX}"
        )


def joint_points(runs: list[RunRecord], loss_key: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:  # fmt: skip
    """(names, N, D, loss, run index) with a point per budget checkpoint of each run that has them (its
    validation loss and tokens there), else the run's final point. A cooldown branch is its own point, in
    its parent's group; a run with branches keeps only its budget points at its final step (the others sit
    in the stable phase of its WSD schedule)."""
    names, n, d, y, groups = [], [], [], [], []
    index: dict[str, int] = {}
    for run in runs:
        size = run.params_non_embedding if math.isfinite(run.params_non_embedding) else run.params_total
        points = [p for p in run.budget_points if math.isfinite(p["loss"]) and math.isfinite(p["tokens"])]
        if run.branches:
            points = [p for p in points if p["step"] >= run.steps]
        if not points:
            points = [{"step": math.nan, "tokens": run.tokens, "loss": getattr(run, loss_key)}]
        for p in points:
            names.append(run.name if len(points) == 1 else f"{run.name}@{int(p['step'])}")
            n.append(size)
            d.append(p["tokens"])
            y.append(p["loss"])
            groups.append(index.setdefault(run.parent or run.name, len(index)))
    return names, np.array(n, float), np.array(d, float), np.array(y, float), np.array(groups)


def _joint_params(theta: np.ndarray) -> dict[str, np.ndarray]:
    """(a, b, e, α, β) rows into named parameters and the compute-optimal exponents a, b and coefficient G."""
    alpha, beta = theta[:, 3], theta[:, 4]
    big_a, big_b = np.exp(theta[:, 0]), np.exp(theta[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (alpha * big_a / (beta * big_b)) ** (1.0 / (alpha + beta))  # Hoffmann et al. 2022, eq. 4
        return {
            "E": np.exp(theta[:, 2]),
            "A": big_a,
            "B": big_b,
            "alpha": alpha,
            "beta": beta,
            "a": beta / (alpha + beta),
            "b": alpha / (alpha + beta),
            "G": g,
        }


def fit_compute_law(
    runs: list[RunRecord], *, irreducible: str = "auto", n_boot: int = 1000, seed: int = 0, n_grid: int = 40
) -> LawFit:
    """Power law through the compute frontier; its bootstrap resamples whole runs (curves)."""
    front = compute_frontier(runs, n_grid=n_grid)
    names = [f"C={c:.3g}" for c in front.budgets]
    fit = fit_single_law(
        "compute",
        names,
        front.budgets,
        front.loss,
        x_name="flops",
        loss_name="frontier_val_loss",
        irreducible=irreducible,
        n_boot=0,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    use_e = bool(fit.irreducible)
    k = 3 if use_e else 2
    rows, progress = [], Progress("bootstrap", n_boot)
    for i in range(n_boot):
        budgets, loss = frontier_resample(front, rng)
        row = np.full(k, np.nan)
        if budgets.size >= k + 1 and np.ptp(np.log(loss)) > 0:
            row = _usable_theta(
                _single_fit(np.log(budgets), np.log(loss), np.ones((1, budgets.size)), use_e)
            )[0]
        rows.append(row)
        progress(i + 1)
    theta = np.array(rows).reshape(n_boot, k)
    samples = _single_params(theta, use_e)
    fit.ci95 = _intervals(samples, front.n_groups, k)
    fit.boot = {name: s.tolist() for name, s in samples.items()}
    fit.n_bootstrap, fit.n_bootstrap_failed = n_boot, int(np.isnan(theta).any(1).sum())
    fit.derived = {"optimal_runs": front.segments(), "n_runs": front.n_groups}
    n_branches = len(front.curves) - front.n_groups
    if n_branches:
        fit.derived["n_cooldown_branches"] = n_branches
    return fit


def best_per_value(runs: list[RunRecord], key: str, loss_key: str) -> tuple[list[RunRecord], list[str]]:
    """One run per distinct `key` value (the lowest loss): several learning rates or seeds at one size must
    not enter a size law as separate points. Returns (kept runs, names of dropped runs)."""
    best: dict[float, RunRecord] = {}
    for run in runs:
        value, current = getattr(run, key), best.get(getattr(run, key))
        if current is None or getattr(run, loss_key) < getattr(current, loss_key):
            best[value] = run
    kept = [r for r in runs if best.get(getattr(r, key)) is r]
    return kept, [r.name for r in runs if best.get(getattr(r, key)) is not r]


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
    if law not in LAWS:
        raise ValueError(f"--law {law}: choose one of {', '.join(LAWS)}")
    if loss not in LOSS_KEYS:
        raise ValueError(f"--loss {loss}: choose one of {', '.join(LOSS_KEYS)}")
    loss_key = LOSS_KEYS[loss]
    excluded = [{"name": n, "reason": r} for n, r in sweep.excluded]
    notes = list(sweep.notes)
    if law == "compute":
        runs = [r for r in sweep.all_runs if r.val is not None]
        if "ratio" in loss:  # the frontier of the ratio curves: the same runs, their val_loss_ratio rows
            runs = [dataclasses.replace(r, val=r.val_ratio) for r in runs if r.val_ratio is not None]
            if not runs:
                raise ValueError(f"{sweep.source}: no run logged val_loss_ratio; use --loss final")
        if sweep.partial:
            notes.append(f"frontier includes the partial curves of {len(sweep.partial)} unfinished run(s)")
        branches = [b for b in sweep.branch_points if b.val is not None]
        if "ratio" in loss:
            branches = [dataclasses.replace(b, val=b.val_ratio) for b in branches if b.val_ratio is not None]
        if branches:
            notes.append(f"frontier includes {_branch_note(branches)}")
        fit = fit_compute_law(runs + branches, irreducible=irreducible, n_boot=n_boot, seed=seed)
    else:
        runs = sweep.completed
        if not runs:
            raise ValueError(f"{sweep.source}: no completed runs to fit (excluded: {len(sweep.excluded)})")
        if law in ("model", "data"):
            runs, dropped = best_per_value(
                runs, "params_non_embedding" if law == "model" else x_data, loss_key
            )
            excluded += [{"name": n, "reason": "a run of the same size had a lower loss"} for n in dropped]
            if dropped:
                notes.append(
                    f"{len(dropped)} run(s) shared a {law} size with another (e.g. an LR sweep): "
                    "the lowest-loss run of each size is used"
                )
        names = [r.name for r in runs]
        y = np.array([getattr(r, loss_key) for r in runs])
        if "ratio" in loss and np.isnan(y).any():
            missing = [n for n, v in zip(names, y, strict=True) if np.isnan(v)]
            raise ValueError(
                f"--loss {loss}: run(s) {', '.join(missing[:5])} logged no val_loss_ratio (trained before "
                "runs fitted a baseline, or no validation); rerun them or fit --loss final"
            )
        params = np.array([r.params_non_embedding for r in runs])
        if np.isnan(params).any():
            params = np.where(np.isnan(params), [r.params_total for r in runs], params)
            notes.append("params_non_embedding missing for some runs: params_total used there")
        if law in ("model", "data"):
            x_name = "params_non_embedding" if law == "model" else x_data
            x = params if law == "model" else np.array([getattr(r, x_data) for r in runs])
            fit = fit_single_law(
                law, names, x, y, x_name=x_name, loss_name=loss_key, irreducible=irreducible,
                n_boot=n_boot, seed=seed,
            )  # fmt: skip
        else:
            branches = [b for b in sweep.branch_points if math.isfinite(getattr(b, loss_key))]
            names, n, d, y, groups = joint_points(runs + branches, loss_key)
            if len(names) > len(runs) + len(branches):
                notes.append(f"{len(names)} points from the budget checkpoints of {len(runs)} runs")
            if branches:
                notes.append(f"joint points include {_branch_note(branches)}")
            fit = fit_joint_law(names, n, d, y, loss_name=loss_key, n_boot=n_boot, seed=seed, groups=groups)
            sources = {b.name: b.source for b in branches}
            for point in fit.points:
                point["source"] = sources.get(point["name"], "run")
    fit.excluded, fit.notes = excluded, notes + fit.notes
    return fit


def _branch_note(branches: list[RunRecord]) -> str:
    runs = len({b.parent for b in branches})
    return (f"{len(branches)} cooldown-branch point(s) of {runs} WSD run(s) (branches.jsonl: completed "
            "cooldowns, named <run>@cooldown<step>)")  # fmt: skip


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
    parser.add_argument("--law", required=True, choices=LAWS)
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
