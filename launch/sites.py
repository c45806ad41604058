"""Site profiles (`slurm/<name>.yaml`): what a cluster offers and how to ask it for resources.

A profile is data, not code: GPUs and CPUs per node, the longest allocation the site grants, and the sbatch
options every job there needs (constraint, account, QOS, partition, signal delay, extra lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scaling.config import ConfigError, doc, from_dict, load_yaml

SITES_DIR = Path(__file__).resolve().parent.parent / "slurm"


@dataclass(kw_only=True)
class SiteConfig:
    """One cluster (or this machine)."""

    name: str = doc("profile name", default="local")
    executor: str = doc("auto | slurm | local: the executor this site is meant for", default="auto")
    gpus_per_node: int = doc("GPUs on one node (0: CPU only)", default=0)
    cpus_per_node: int = doc("CPU cores on one node", default=2)
    mem_gb_per_node: float = doc("usable memory of one node in GiB", default=8.0)
    max_nodes: int = doc("most nodes one job may ask for", default=1)
    max_time_min: int = doc("longest allocation the site grants (runs chain requeues beyond it)", default=60)
    partition: str | None = doc("Slurm partition (-p)", default=None)
    account: str | None = doc("Slurm account (-A); set it in the spec's site_overrides", default=None)
    qos: str | None = doc("Slurm QOS (-q)", default=None)
    constraint: str | None = doc("Slurm constraint (-C), e.g. gpu", default=None)
    exclusive: bool = doc("ask for whole nodes (--exclusive)", default=False)
    signal_delay_s: int = doc("seconds before the time limit Slurm sends USR2 (checkpoint time)", default=120)
    extra_sbatch: list[str] = doc(
        "extra '#SBATCH ...' option lines, without the prefix", default_factory=list
    )
    setup: list[str] = doc("shell lines run before srun (module load, venv activation)", default_factory=list)

    def __post_init__(self) -> None:
        for key in ("cpus_per_node", "max_nodes", "max_time_min"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be at least 1")
        if self.gpus_per_node < 0:
            raise ValueError(f"gpus_per_node={self.gpus_per_node} must be >= 0")
        if self.executor not in ("auto", "slurm", "local"):
            raise ValueError(f"executor={self.executor!r}: use auto, slurm or local")


def load_site(name_or_path: str, overrides: dict | None = None) -> SiteConfig:
    """Load `slurm/<name>.yaml` (or a path), then apply the spec's `site_overrides` mapping."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SITES_DIR.glob("*.yaml")))
        raise ConfigError(f"site {name_or_path!r}: no profile {path}; known sites: {known}")
    data = load_yaml(path)
    data.update(overrides or {})
    try:
        return from_dict(SiteConfig, data, source=str(path))
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{path}: {err}") from None
