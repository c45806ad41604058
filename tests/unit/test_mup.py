"""muP: parameter classes and groups, init scales, and the coordinate check across widths."""

from __future__ import annotations

import json
import math

import pytest
import torch

from scaling.model import ModelConfig, build_model, resolve_model_config
from scaling.model.mup import classify_parameter, multipliers
from scaling.train.coordcheck import PROBES, coord_sizes, coordcheck, main
from scaling.train.param_groups import build_param_groups


def _cfg(width: int, parameterization: str = "mup") -> ModelConfig:
    return resolve_model_config(
        ModelConfig(
            name="custom", width=width, n_layers=2, d_state=16, headdim=16, parameterization=parameterization
        )
    )


def test_groups_cover_every_parameter_once_with_no_decay_tags() -> None:
    cfg = _cfg(128)
    model = build_model(cfg, out_dim=6)
    groups = build_param_groups(model, cfg, lr=1e-3, weight_decay=0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        assert set(group) >= {"params", "lr", "weight_decay", "name", "lr_mult"}
        for p in group["params"]:
            no_decay = names[id(p)].endswith(
                ("A_log", ".D", "dt_bias", "bias", "norm.weight", "norm_f.weight")
            )
            assert (group["weight_decay"] == 0.0) == no_decay, names[id(p)]
    assert classify_parameter("layers.3.mixer.in_proj.weight_bc") == "ssm_bc"
    with pytest.raises(ValueError, match="has no muP class"):
        classify_parameter("layers.0.mixer.mystery")


def test_multipliers_are_one_at_base_and_scale_with_width() -> None:
    for cls, m in multipliers(_cfg(256)).items():
        assert m == {"lr": 1.0, "init": 1.0}, cls
    wide = multipliers(_cfg(1024))
    assert wide["hidden"]["lr"] == pytest.approx(0.25)
    assert wide["output"]["lr"] == pytest.approx(0.25)
    assert wide["ssm_bc"]["lr"] == pytest.approx(0.5)  # eta_B ~ N_x / sqrt(N_u)
    assert wide["ssm_bc"]["init"] == pytest.approx(1.0)  # sigma_B ~ sqrt(N_x / N_u) = default 1/sqrt(fan_in)
    assert wide["input"]["lr"] == 1.0 and wide["no_decay"]["lr"] == 1.0
    assert all(m == {"lr": 1.0, "init": 1.0} for m in multipliers(_cfg(1024, "standard")).values())
    lrs = {g["name"]: g["lr"] for g in build_param_groups(build_model(_cfg(1024), 4), _cfg(1024), 2e-4, 0.01)}
    assert lrs["hidden"] == pytest.approx(5e-5) and lrs["input"] == pytest.approx(2e-4)


def test_head_init_std_scales_as_one_over_width() -> None:
    torch.manual_seed(0)
    std = {w: build_model(_cfg(w), out_dim=64).head.weight.std().item() for w in (64, 1024)}
    assert std[64] / std[1024] == pytest.approx(16, rel=0.1)
    sp = {w: build_model(_cfg(w, "standard"), out_dim=64).head.weight.std().item() for w in (64, 1024)}
    assert sp[64] / sp[1024] == pytest.approx(4, rel=0.1)
    bc = build_model(_cfg(1024), out_dim=4).layers[0].mixer.in_proj.weight_bc
    assert bc.abs().max().item() <= 1 / math.sqrt(1024) + 1e-7


def test_coordcheck_mup_is_flat_and_standard_drifts() -> None:
    widths = [64, 128, 256, 512]
    table = coordcheck(widths, steps=3, lr=3e-3, seeds=3)
    mup, sp = table["results"]["mup"]["slopes"], table["results"]["standard"]["slopes"]
    assert set(mup) == set(PROBES) and table["seeds"] == 3
    for kind, slope in mup.items():
        assert abs(slope) < 0.1, f"muP {kind} drifts with width: slope {slope:+.3f}"
    assert max(sp.values()) > 0.3, sp  # standard parameterisation: updates grow with width
    # where both move, muP drifts far less than the standard parameterisation
    for kind in ("in_proj", "out_proj", "block", "head"):
        assert abs(mup[kind]) < 0.5 * abs(sp[kind]), (kind, mup[kind], sp[kind])


def test_coordcheck_averages_seeds() -> None:
    one = coordcheck([32, 64], steps=1, seeds=1)["results"]["mup"]["sizes"]
    two = coordcheck([32, 64], steps=1, seeds=2)["results"]["mup"]["sizes"]
    second = coord_sizes(64, "mup", steps=1, seed=1)["out_proj"]
    expect = [(a + b) / 2 for a, b in zip(one["64"]["out_proj"], second, strict=True)]
    assert two["64"]["out_proj"] == pytest.approx(expect, rel=1e-6)


def test_coordcheck_cli_writes_png_and_json(tmp_path, capsys) -> None:  # noqa: ANN001
    args = ["coordcheck", "--widths", "32,64", "--steps", "1", "--seeds", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    table = json.loads((tmp_path / "coordcheck.json").read_text())
    assert table["widths"] == [32, 64] and len(table["results"]["mup"]["sizes"]["32"]["head"]) == 2
    assert (tmp_path / "coordcheck.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["coordcheck", "--widths", "32,x", "--out", str(tmp_path)]) == 2
    assert main(["coordcheck", "--widths", "32", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "--widths" in capsys.readouterr().err
