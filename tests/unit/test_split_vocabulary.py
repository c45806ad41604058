"""One split vocabulary: what the data writers produce is what the trainer, downstream and sweeps read."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.spec import expand_runs, load_spec
from scaling.data.__main__ import build_parser
from scaling.data.cli import parse_splits
from scaling.data.schema import PRETRAIN_SPLIT, SPLIT_NAMES, VAL_SPLIT
from scaling.data.tpcpp import SPLITS as TPCPP_SPLITS
from scaling.train.config import DataConfig

REPO = Path(__file__).resolve().parents[2]
PAPER_SWEEPS = ("model_scaling", "data_scaling", "ablations")


def test_writers_and_trainer_defaults_share_the_names() -> None:
    simulated = parse_splits(
        build_parser().parse_args(["simulate", "--out", "x", "--events", "20"]).splits, 20
    )
    assert set(simulated) <= set(SPLIT_NAMES)
    assert set(TPCPP_SPLITS.values()) | {PRETRAIN_SPLIT} == set(SPLIT_NAMES)
    data = DataConfig()
    # the trainer's default validation split is one every writer produces (it was `validation`: none did)
    assert data.val_split == VAL_SPLIT and data.val_split in simulated
    assert data.train_split in simulated


def test_simulate_refuses_a_split_name_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError, match=r"--splits: split 'validation' is not one of pretrain, train, val"):
        parse_splits("train=0.9,validation=0.1", 10)


@pytest.mark.parametrize("sweep", PAPER_SWEEPS)
def test_paper_sweeps_pretrain_on_pretrain_and_validate_on_a_fixed_held_out_split(sweep: str) -> None:
    path = REPO / "sweeps" / f"{sweep}.yaml"
    spec, base, site = load_spec(path)
    for plan in expand_runs(spec, base, site, str(path)):
        data = plan.config["data"]
        assert data["train_split"] == PRETRAIN_SPLIT and data["val_split"] == VAL_SPLIT, plan.name
        assert data["val_events"] >= 1024  # a fixed set, the same events at every validation
