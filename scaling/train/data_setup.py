"""Make the run's dataset when it is missing and `data.simulate_if_missing.enabled` (quickstart)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from scaling.config import ConfigError
from scaling.train.config import DataConfig

log = logging.getLogger(__name__)


def ensure_dataset(data: DataConfig) -> None:
    """Simulate train + validation splits into `data.dataset_dir` if it has no manifest."""
    from scaling.data.shards import write_dataset

    root = Path(data.dataset_dir)
    if (root / "manifest.json").is_file():
        return
    sim = data.simulate_if_missing
    if not sim.enabled:
        raise ConfigError(
            f"data.dataset_dir={root}: no manifest.json there; make the dataset with `python -m scaling.data "
            "simulate` or set data.simulate_if_missing.enabled=true"
        )
    from scaling.data import simulator

    if sim.profile not in simulator.PROFILES:
        raise ConfigError(
            f"data.simulate_if_missing.profile={sim.profile!r}: use one of {', '.join(simulator.PROFILES)}"
        )
    cfg = simulator.profile_config(sim.profile)
    log.info("simulating %d + %d events into %s", sim.train_events, sim.val_events, root)
    splits = {
        data.train_split: simulator.simulate_events(sim.train_events, sim.seed, cfg, start=0),
        data.val_split: simulator.simulate_events(sim.val_events, sim.seed, cfg, start=sim.train_events),
    }
    provenance = {
        "source": "simulator",
        "seed": sim.seed,
        "profile": sim.profile,
        "config": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else repr(cfg),
    }
    # Runs of a sweep may start together on one dataset: write aside, then rename; the first one wins.
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_dataset(tmp, splits, shard_events=sim.shard_events, provenance=provenance)
        try:
            tmp.rename(root)
        except OSError:
            if not (root / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
