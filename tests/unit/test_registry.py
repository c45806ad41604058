"""Named registries (scaling/registry.py) and those built on them: objectives, LR schedules, scaling laws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaling.registry import Registry


def test_lookup_of_an_unknown_name_is_one_line_listing_the_choices() -> None:
    reg: Registry[int] = Registry("colour")
    reg.register("red")(1)
    reg.add("blue", 2)
    assert reg.lookup("blue") == 2 and reg.names() == ("red", "blue") and dict(reg) == {"red": 1, "blue": 2}
    with pytest.raises(ValueError, match=r"^unknown colour 'green'; choose one of red, blue$"):
        reg.lookup("green")
    worded: Registry[int] = Registry("colour", unknown="paint={name!r}: one of {sorted}")
    worded.add("red", 1)
    with pytest.raises(ValueError, match=r"^paint='x': one of \['red'\]$"):
        worded.lookup("x")


def test_a_taken_name_is_refused_and_the_first_entry_kept() -> None:
    reg: Registry[str] = Registry("law")

    @reg.register("model")
    def first() -> str:
        return "first"

    with pytest.raises(ValueError, match="law 'model' is already registered"):

        @reg.register("model")
        def second() -> str:
            return "second"

    assert reg.lookup("model")() == "first" and len(reg) == 1
    reg.remove("model")
    assert "model" not in reg


def test_schedules_come_from_the_registry_and_config_checks_it_without_torch() -> None:
    from scaling.train.config import ScheduleConfig
    from scaling.train.schedule import REGISTRY, SCHEDULES, lr_factor

    assert SCHEDULES == REGISTRY.names() == ("cosine", "wsd", "constant")
    with pytest.raises(ValueError, match=r"^schedule.name='linear': use one of cosine, wsd, constant$"):
        ScheduleConfig(name="linear")
    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.register("wsd")(lambda step, **kw: 0.5)

    @REGISTRY.register("half")
    def half(step: int, **kw: float) -> float:
        return 0.5

    try:
        assert ScheduleConfig(name="half").name == "half"
        assert lr_factor(0, warmup_steps=4, total_steps=10, name="half") == 0.25  # the shared warm-up
        assert lr_factor(7, warmup_steps=4, total_steps=10, name="half") == 0.5
    finally:
        REGISTRY.remove("half")


def test_objective_registry_refuses_a_second_knnn() -> None:
    from scaling.objectives import REGISTRY, KnnnObjective, ObjectiveConfig, build_objective, register

    with pytest.raises(ValueError, match="objective 'knnn' is already registered"):
        register("knnn")(type("Other", (KnnnObjective,), {}))
    assert REGISTRY["knnn"] is KnnnObjective and KnnnObjective.name == "knnn"
    cfg = ObjectiveConfig()
    cfg.name = "nope"  # past the config's own check: the registry's lookup words the same error
    with pytest.raises(ValueError, match=r"^objective.name: unknown objective 'nope'; choose one of \['c"):
        build_objective(cfg)


def test_a_law_registered_here_is_fitted_plotted_and_reported_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis import fit as fit_cli
    from analysis import plots, report
    from analysis.laws import REGISTRY, FitRequest, PowerLaw, register
    from analysis.runs import load_sweep
    from tests.synthetic import write_sweep

    sweep = write_sweep(tmp_path / "s", widths=[64, 128, 256, 512], steps=300)
    with pytest.raises(ValueError, match=r"^--law width: choose one of model, data, compute, joint$"):
        fit_cli.fit_source(load_sweep(sweep), "width")

    @register("width")
    class WidthLaw(PowerLaw):
        symbol, x_label = "W", "model width W"

        def x_key(self, req: FitRequest) -> str:
            return "width"

        def supported(self, sweep: object) -> bool:
            return True

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, stem: figures.append((fig, stem)) or [])
    try:
        out = tmp_path / "width.json"
        code = fit_cli.main([str(sweep), "--law", "width", "--bootstrap", "20", "--irreducible", "no",
                             "--json", str(out), "--out", str(tmp_path / "o")])  # fmt: skip
        assert code == 0, capsys.readouterr()
        fit = json.loads(out.read_text())
        assert fit["law"] == "width" and fit["formula"] == "L(W) = A*W^-alpha" and fit["x"] == "width"
        assert sorted(p["width"] for p in fit["points"]) == [64.0, 128.0, 256.0, 512.0]
        assert fit["params"]["alpha"] > 0 and fit["ci95"]["alpha"][0] < fit["params"]["alpha"]
        ((fig, stem),) = figures  # drawn by the law's own draw: its points and axis label
        assert stem == "law_width" and fig.axes[0].get_xlabel() == "model width W"
        assert len(fig.axes[0].collections[0].get_offsets()) == 4
        plots.plt.close(fig)
        assert report.supported_laws(load_sweep(sweep))[-1] == "width"  # after the built-ins' order
    finally:
        REGISTRY.remove("width")
    assert REGISTRY.names() == ("model", "data", "compute", "joint")
