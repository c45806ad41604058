"""The study report: one Markdown and one HTML page per sweep, with the run table, fitted laws with intervals,
figures, the paper's model family beside ours, the probes of each run that has a probe.json
(`python -m analysis.probe`), the objective comparison of a sweep whose runs differ in objective
(`analysis/objectives_report.py`), and any downstream sections.

    python -m analysis.report runs/model_scaling/ --out report/ [--bootstrap 200] [--seed 0]

A law is fitted only where the sweep supports it: model law with >= 3 distinct model sizes, data law with >= 3
distinct token counts, joint law with >= 3 of each and >= 8 runs, compute frontier with >= 2 runs that logged
validation curves, LR transfer with >= 2 widths tried at >= 3 learning rates each. Downstream sections come
from `analysis.downstream.report.report_sections(sweep_dir, out_dir)` when that module is present.
"""

from __future__ import annotations

import argparse
import html
import importlib
import logging
import math
import re
import sys
import time
from pathlib import Path

from analysis import plots
from analysis.fit import fit_source
from analysis.laws import REGISTRY as LAWS
from analysis.mup_transfer import analyse_transfer, format_transfer, plot_transfer
from analysis.objectives_report import objectives_section
from analysis.probe.report import probe_section
from analysis.result import LawFit
from analysis.runs import Sweep, load_sweep
from scaling.atomic import write_json_atomic, write_text_atomic
from scaling.model.family import paper_family

log = logging.getLogger(__name__)


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else format(value, spec)
    )


def run_table(sweep: Sweep) -> str:
    """Markdown table of every completed run, then the excluded ones with their reason."""
    lines = [
        "| run | model | width | params (non-emb.) | tokens | FLOPs | GPU-hours | final val loss "
        "| ratio to lookup |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(sweep.completed, key=lambda r: (r.params_non_embedding, r.tokens, r.lr or 0.0)):
        lines.append(
            f"| {r.name} | {r.model or '–'} | {r.width or '–'} | {_fmt(r.params_non_embedding)} | "
            f"{_fmt(r.tokens)} | {_fmt(r.flops)} | {_fmt(r.gpu_hours, '.3f')} | "
            f"{_fmt(r.final_val_loss, '.4f')} | {_fmt(r.final_val_loss_ratio, '.3f')}"
            f"{'*' if r.ratio_source == 'ratios.json' else ''} |"
        )
    lines.append(
        "\nratio to lookup: validation loss over the loss of the objective's trivial predictor (the mean "
        "target per radial layer, fitted on training events) on the same events; 1 means nothing learned "
        "beyond the detector's layout."
    )
    if any(r.ratio_source == "ratios.json" for r in sweep.completed):
        lines.append(
            "\n\\* re-evaluated after training from the run's checkpoints (`python -m scaling.train.ratios`, "
            "ratios.json) with the current baseline: the ratio the trainer logged is superseded."
        )
    if sweep.excluded:
        lines.append(
            "\nExcluded from the fits (their partial validation curves still enter the compute frontier):\n"
        )
        lines += [f"- {name}: {reason}" for name, reason in sweep.excluded]
    return "\n".join(lines)


def paper_table(sweep: Sweep) -> str | None:
    """The paper's parameter counts and compute beside ours, for runs of the paper's family (model.name
    m1-m6: 12 layers, d_state 128); a custom model of the same width (the quickstart's) is not one of them."""
    family = paper_family()
    ours = {r.model: r for r in sweep.completed if r.model in family}
    if not ours:
        return None
    lines = [
        "| model | width | paper params | our params (total) | paper compute | paper GPU-hours | "
        "our GPU-hours | our device |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, preset in family.items():
        width, n_paper, gpu = preset["width"], preset["paper_params"], preset["paper_gpu"]
        n_gpu, hours = preset["paper_gpus"], preset["paper_hours"]
        r = ours.get(name)
        our_n = f"{r.params_total / 1e6:.3g}M" if r else "–"
        our_hours = _fmt(r.gpu_hours, ".3f") if r else "–"
        our_device = f"{r.device or '–'}" + (f" x {r.world_size}" if r.world_size else "") if r else "–"
        lines.append(
            f"| {name} | {width} | {n_paper / 1e6:g}M | {our_n} | {n_gpu} {gpu} x {hours} h | "
            f"{n_gpu * hours} | {our_hours} | {our_device} |"
        )
    return "\n".join(lines)


def supported_laws(sweep: Sweep) -> list[str]:
    """The laws this sweep's runs can identify (each law's `supported`; see the module docstring), in the
    laws' report order."""
    ordered = sorted(LAWS.values(), key=lambda law: law.report_order)
    return [law.name for law in ordered if law.supported(sweep)]


def law_section(fit: LawFit) -> str:
    """Markdown for one law: a warning when it cannot be trusted, then parameters with 95 % intervals."""
    lines = [f"### {fit.law} law: `{fit.formula}`", ""]
    if not fit.reliable:
        why = (
            "did not converge" if not fit.converged else f"parameter(s) {', '.join(fit.at_bound)} at a bound"
        )
        lines.append(f"**NOT RELIABLE: the fit {why}; the numbers below are not estimates.**\n")
    lines += ["| parameter | value | 95 % interval |", "| --- | --- | --- |"]
    for name, value in list(fit.params.items()) + [
        (k, fit.derived[k]) for k in ("a", "b") if k in fit.derived
    ]:
        lo, hi = fit.ci95.get(name, [math.nan, math.nan])
        lines.append(f"| {name} | {_fmt(value, '.4g')} | [{_fmt(lo, '.4g')}, {_fmt(hi, '.4g')}] |")
    lines.append(
        f"\n{fit.n_points} points (x = {fit.x}, loss = {fit.loss}); R² (log) = {_fmt(fit.r2_log, '.4f')}, "
        f"RMS log residual = {_fmt(fit.rms_log_residual, '.3g')}; {fit.n_bootstrap} bootstrap resamples "
        f"of runs ({fit.n_bootstrap_failed} failed). {fit.selection}."
    )
    if "a" in fit.derived:
        lines.append(
            f"\nCompute-optimal allocation under C = 6ND: N_opt ∝ C^{fit.derived['a']:.3f}, "
            f"D_opt ∝ C^{fit.derived['b']:.3f}."
        )
    if fit.derived.get("optimal_runs"):
        lines.append("\nOptimal run along the frontier:\n")
        lines += [
            f"- {s['flops_from']:.3g} – {s['flops_to']:.3g} FLOPs: {s['run']} ({s['model'] or 'model ?'})"
            for s in fit.derived["optimal_runs"]
        ]
    lines += [f"\n_Note: {n}._" for n in fit.notes]
    return "\n".join(lines)


def downstream_sections(sweep_dir: Path, out_dir: Path) -> list[str]:
    """Markdown blocks from `analysis.downstream.report.report_sections`, when that module exists."""
    try:
        module = importlib.import_module("analysis.downstream.report")
    except ImportError:
        return []
    hook = getattr(module, "report_sections", None)
    if hook is None:
        return []
    try:
        return list(hook(sweep_dir, out_dir))
    except Exception as err:  # a downstream failure must not lose the scaling report
        log.warning("downstream sections skipped: %s", err)
        return [f"_Downstream sections could not be built: {err}_"]


def build_report(sweep_dir: Path, out_dir: Path, *, n_boot: int = 200, seed: int = 0) -> tuple[str, dict]:
    """Fit what the sweep supports, draw the figures into `out_dir`, and return (Markdown, fits as JSON)."""
    sweep = load_sweep(sweep_dir)
    md = [
        f"# Scaling study report: {sweep.name}",
        "",
        f"Source: `{sweep_dir}`.",
        "",
        "## Runs",
        "",
        run_table(sweep),
    ]
    paper = paper_table(sweep)
    if paper:
        md += ["", "## Beside the paper (FM4NPP model family)", "", paper]
    fits: dict[str, dict] = {}
    laws = supported_laws(sweep)
    md += ["", "## Fitted laws", ""]
    if not laws:
        md.append("_This sweep supports no law (fewer than 3 distinct sizes or token counts)._")
    for law in laws:
        log.info("fitting the %s law (%d bootstrap resamples)", law, n_boot)
        try:
            fit = fit_source(sweep, law, n_boot=n_boot, seed=seed)
        except ValueError as err:
            md += [f"### {law} law", "", f"_Not fitted: {err}_", ""]
            continue
        fits[law] = fit.to_json()
        figure = plots.plot_law(sweep, fit, out_dir)[0]
        md += [law_section(fit), "", f"![{law} law]({figure.name})", ""]
    md += _ratio_laws(sweep, laws, out_dir, fits, n_boot=n_boot, seed=seed)
    md += _transfer_section(sweep, out_dir)
    curves = plots.plot_training_curves(sweep, out_dir)[0]
    md += ["## Training curves", "", f"![training curves]({curves.name})", ""]
    md += probe_section(Path(sweep_dir))
    md += objectives_section(sweep, Path(sweep_dir))  # runs differing in objective: the comparison table
    md += downstream_sections(Path(sweep_dir), out_dir)
    return "\n".join(md) + "\n", fits


def _ratio_laws(sweep: Sweep, laws: list[str], out_dir: Path, fits: dict[str, dict], *, n_boot: int,
                seed: int) -> list[str]:  # fmt: skip
    """The laws of val_loss_ratio (those with `ratio_variant`: model and data), where every completed run
    logged one: a law of the loss alone can be a law of the baseline (the table's loss shrinks with the data
    as well)."""
    if not sweep.completed or not all(math.isfinite(r.final_val_loss_ratio) for r in sweep.completed):
        return []
    md = []
    for law in (name for name in laws if LAWS.lookup(name).ratio_variant):
        try:
            fit = fit_source(sweep, law, loss="val_loss_ratio", n_boot=n_boot, seed=seed)
        except ValueError as err:
            md += [f"### {law} law of the baseline ratio", "", f"_Not fitted: {err}_", ""]
            continue
        fits[f"{law}_ratio"] = fit.to_json()
        figure = plots.plot_law(sweep, fit, out_dir)[0]
        md += [law_section(fit).replace(" law:", " law of val_loss_ratio:", 1), "",
               f"![{law} law of the ratio]({figure.name})", ""]  # fmt: skip
    return md


def _transfer_section(sweep: Sweep, out_dir: Path) -> list[str]:
    by_width: dict[int, set[float]] = {}
    for r in sweep.completed:
        if r.width is not None and r.lr is not None:
            by_width.setdefault(r.width, set()).add(r.lr)
    if sum(len(v) >= 3 for v in by_width.values()) < 2:
        return []
    try:
        result = analyse_transfer(sweep)
    except ValueError as err:
        return ["## Learning-rate transfer (μP)", "", f"_Not analysed: {err}_", ""]
    figure = plot_transfer(result, out_dir, title=sweep.name)[0]
    return [
        "## Learning-rate transfer (μP)",
        "",
        format_transfer(result),
        "",
        f"![LR transfer]({figure.name})",
        "",
    ]


def markdown_to_html(markdown: str, title: str) -> str:
    """HTML for the Markdown this module writes: headings, tables, images, lists, paragraphs, bold, code."""

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2" style="max-width:720px">', text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"<em>\1</em>", text)

    out, blocks = [], markdown.split("\n\n")
    for block in blocks:
        rows = [ln for ln in block.strip().split("\n") if ln.strip()]
        if not rows:
            continue
        if rows[0].startswith("#"):
            level = len(rows[0]) - len(rows[0].lstrip("#"))
            out.append(f"<h{level}>{inline(rows[0][level:].strip())}</h{level}>")
            rows = rows[1:]
        if rows and all(r.startswith("|") for r in rows):
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows if not set(r) <= set("|- ")]
            head = "".join(f"<th>{inline(c)}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif rows and all(r.startswith("- ") for r in rows):
            out.append("<ul>" + "".join(f"<li>{inline(r[2:])}</li>" for r in rows) + "</ul>")
        elif rows:
            out.append("<p>" + "<br>".join(inline(r) for r in rows) + "</p>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="runs/<sweep>/")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for report.md, report.html and figures"
    )
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples per law")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    try:
        markdown, fits = build_report(args.sweep, args.out, n_boot=args.bootstrap, seed=args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_text_atomic(args.out / "report.md", markdown)
    write_text_atomic(args.out / "report.html", markdown_to_html(markdown, args.sweep.name))
    write_json_atomic(args.out / "fits.json", fits)
    print(f"wrote {args.out / 'report.md'} and report.html ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
