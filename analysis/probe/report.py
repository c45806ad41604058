"""The "Probes" section of the sweep report: one table per run with a probe.json (target × feature source).

>>> lines = probe_section(Path("runs/quickstart"))    # Markdown lines; [] when no run was probed
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PROBE_FILE = "probe.json"
SOURCES = ("backbone", "random_init", "raw", "backbone_final_norm")  # column order (torch-free constants)
SOURCE_LABELS = {
    "backbone": "backbone",
    "random_init": "random init",
    "raw": "raw inputs",
    "backbone_final_norm": "backbone, after final norm",
}
SUBSET_LABELS = {"all": "all", "non_noise": "non-noise"}


def _num(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) and math.isfinite(value) else "–"


def _cell(metrics: dict[str, Any] | None, kind: str) -> str:
    if not metrics:
        return "–"
    if kind == "classification":
        return f"{_num(metrics.get('accuracy'))} ({_num(metrics.get('balanced_accuracy'))})"
    cell = _num(metrics.get("r2"))
    return cell + (f" ({_num(metrics['sign_accuracy'])})" if "sign_accuracy" in metrics else "")


def probe_table(result: dict[str, Any]) -> str:
    """Markdown table of one probe.json: rows target × point subset, columns the feature sources."""
    sources = [s for s in SOURCES if s in result.get("sources", SOURCE_LABELS)]
    head = "| target | points | metric | " + " | ".join(SOURCE_LABELS[s] for s in sources) + " |"
    lines = [head, "|" + " --- |" * (3 + len(sources))]
    for key, subsets in result.get("results", {}).items():
        kind = "classification" if "majority_class" in subsets.get("all", {}) else "regression"
        unit = result.get("targets", {}).get(key, "")
        for subset, by_source in subsets.items():
            if kind == "classification":
                major = _num(by_source.get("majority_class", {}).get("accuracy"))
                metric = f"accuracy (balanced); majority class {major}"
            else:
                metric = "R² (sign accuracy)" if key == "charge_sign" else "R²"
            cells = " | ".join(_cell(by_source.get(s), kind) for s in sources)
            lines.append(f"| {key} [{unit}] | {SUBSET_LABELS.get(subset, subset)} | {metric} | {cells} |")
    return "\n".join(lines)


def probe_notes(result: dict[str, Any]) -> str:
    """One paragraph: events, splits, which features each source reads, skipped targets, time taken."""
    prenorm = result.get("features", {}).get("backbone") == "prenorm"
    layer = "the residual stream before the final RMSNorm" if prenorm else "the final features"
    text = (
        f"{result.get('n_train_events')} training events of split `{result.get('train_split')}` "
        f"({result.get('n_train_points')} points), scored on {result.get('n_eval_events')} held-out events "
        f"of `{result.get('eval_split')}` ({result.get('n_eval_points')} points, noise fraction "
        f"{_num(result.get('noise_fraction_eval'))}). Backbone and random init read {layer}; "
        f"checkpoint `{Path(result.get('checkpoint', {}).get('folder', '?')).name}`; "
        f"{_num(result.get('timing_s', {}).get('total'), '.0f')} s."
    )
    for key, note in result.get("skipped", {}).items():
        text += f" {key} skipped: {note}."
    return text


def probe_section(sweep_dir: Path) -> list[str]:
    """Markdown lines of the report's "Probes" section: a table per run directory holding probe.json."""
    found = sorted(Path(sweep_dir).glob(f"*/{PROBE_FILE}"))
    if not found:
        return []
    md = [
        "## Probes",
        "",
        "Linear probes of frozen per-point features (ridge regression: R²; multinomial logistic regression: "
        "accuracy with balanced accuracy in brackets), trained on some events and scored on held-out ones; "
        "the same probes on the untrained network of the same shape and seed, and on the raw inputs. "
        "Non-noise rows are fitted and scored without noise points (`python -m analysis.probe`).",
        "",
    ]
    for path in found:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            md += [f"### {path.parent.name}", "", f"_probe.json unreadable: {err}_", ""]
            continue
        md += [f"### {path.parent.name}", "", probe_notes(result), "", probe_table(result), ""]
    return md
