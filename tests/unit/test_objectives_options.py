"""Each objective's options live beside it (torch-free) and combine into the one flat `objective:` section."""

from __future__ import annotations

import dataclasses

import pytest

from scaling.config import ConfigError, from_dict
from scaling.objectives.config import ObjectiveConfig
from scaling.objectives.contrastive_options import ContrastiveOptions
from scaling.objectives.knnn_options import KnnnOptions
from scaling.objectives.masked_options import MpmOptions
from scaling.objectives.options import ObjectiveOptions


def _own(cls: type) -> set[str]:
    """Fields a class declares beyond the shared ones."""
    shared = {f.name for f in dataclasses.fields(ObjectiveOptions)}
    return {f.name for f in dataclasses.fields(cls)} - shared


def test_each_objectives_keys_are_declared_once_and_all_reach_the_config() -> None:
    own = {cls: _own(cls) for cls in (KnnnOptions, MpmOptions, ContrastiveOptions)}
    assert own[KnnnOptions] == {"k", "target_backend", "target_device"}
    assert own[MpmOptions] == {"mask_ratio", "mpm_target", "codebook_size", "codebook_points", "order_head"}
    assert own[ContrastiveOptions] == {"temperature", "projection_dim", "augment"}
    assert _own(ObjectiveConfig) == set().union(*own.values())  # no key taken twice, none left out
    cfg = from_dict(ObjectiveConfig, {"name": "mpm", "mask_ratio": 0.5, "k": 4, "temperature": 0.2})
    assert (cfg.mask_ratio, cfg.k, cfg.temperature) == (0.5, 4, 0.2)  # the flat YAML spelling
    with pytest.raises(ConfigError, match="unknown key .mask. \\(known here: augment, .*mask_ratio"):
        from_dict(ObjectiveConfig, {"mask": 0.5}, source="objective")


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (KnnnOptions, {"k": 0}, "objective.k: must be >= 1, got 0"),
        (KnnnOptions, {"metric": "physical", "target_backend": "torch"}, "built by the CPU search"),
        (MpmOptions, {"mask_ratio": 1.0}, r"mask_ratio: must lie in \(0, 1\), got 1.0; MPM"),
        (ContrastiveOptions, {"temperature": 0.0}, "objective.temperature must be > 0"),
        (ContrastiveOptions, {"difficulty_bins": 0}, "objective.difficulty_bins: must be >= 1"),  # shared
    ],
)
def test_an_objectives_checks_run_on_its_own_options_and_in_the_config(
    cls: type, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)
    with pytest.raises(ValueError, match=message):
        ObjectiveConfig(**kwargs)
