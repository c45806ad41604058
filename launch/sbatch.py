"""Render `slurm/train.sbatch` for one run: for people who launch with plain sbatch instead of submitit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from launch.sites import SiteConfig
from launch.spec import RunPlan

TEMPLATE = Path(__file__).resolve().parent.parent / "slurm" / "train.sbatch"
SITE_KEYS = ("partition", "account", "qos", "constraint")


class SbatchOption(NamedTuple):
    """One site-dependent sbatch option: its long name, its value (True for a flag), its line as written, and
    whether it is one of the site's `extra_sbatch` lines (passed through as they are)."""

    key: str
    value: Any
    line: str
    extra: bool = False


def _option(key: str, value: Any) -> SbatchOption:
    return SbatchOption(key, value, f"--{key}" if value is True else f"--{key}={value}")


def parse_option(line: str) -> SbatchOption:
    """A site's extra line ("--mail-type=END", "--hint=nomultithread") as an option, its text kept."""
    key, _, value = line.lstrip("-").partition("=")
    return SbatchOption(key, value or True, line, extra=True)


def site_options(plan: RunPlan, site: SiteConfig) -> list[SbatchOption]:
    """The site-dependent options of one run, in script order: GPUs, partition, account, QOS, constraint,
    exclusive, then the site's extra lines. Both the rendered script (`sbatch_options`) and submitit's
    parameters (`launch.executor.slurm_parameters`) are built from this one list."""
    options = []
    if plan.resources.gpus_per_node:
        options.append(_option("gpus-per-node", plan.resources.gpus_per_node))
    for key in SITE_KEYS:
        if getattr(site, key):
            options.append(_option(key, getattr(site, key)))
    if site.exclusive:
        options.append(_option("exclusive", True))
    options.extend(parse_option(line) for line in site.extra_sbatch)
    return options


def sbatch_options(plan: RunPlan, site: SiteConfig) -> list[str]:
    """The site-dependent '#SBATCH' lines: GPUs, partition, account, QOS, constraint, exclusive, extras."""
    return [f"#SBATCH {option.line}" for option in site_options(plan, site)]


def render_sbatch(plan: RunPlan, site: SiteConfig, run_dir: str | Path) -> str:
    res = plan.resources
    return TEMPLATE.read_text(encoding="utf-8").format(
        name=plan.name,
        nodes=res.nodes,
        ranks_per_node=res.ranks_per_node,
        cpus_per_task=res.cpus_per_task,
        mem_gb=int(res.mem_gb),
        time_min=plan.time_min,
        signal_delay_s=site.signal_delay_s,
        run_dir=run_dir,
        entry=plan.entry,
        options="\n".join(sbatch_options(plan, site)),
        setup="\n".join(site.setup),
    )
