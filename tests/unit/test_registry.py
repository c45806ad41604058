"""Named registries (scaling/registry.py) and those built on them: objectives, LR schedules, scaling laws."""

from __future__ import annotations

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
