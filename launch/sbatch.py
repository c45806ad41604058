"""Render `slurm/train.sbatch` for one run: for people who launch with plain sbatch instead of submitit."""

from __future__ import annotations

from pathlib import Path

from launch.sites import SiteConfig
from launch.spec import RunPlan

TEMPLATE = Path(__file__).resolve().parent.parent / "slurm" / "train.sbatch"


def sbatch_options(plan: RunPlan, site: SiteConfig) -> list[str]:
    """The site-dependent '#SBATCH' lines: GPUs, partition, account, QOS, constraint, exclusive, extras."""
    lines = []
    if plan.resources.gpus_per_node:
        lines.append(f"--gpus-per-node={plan.resources.gpus_per_node}")
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(site, key):
            lines.append(f"--{key}={getattr(site, key)}")
    if site.exclusive:
        lines.append("--exclusive")
    lines.extend(site.extra_sbatch)
    return [f"#SBATCH {line}" for line in lines]


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
