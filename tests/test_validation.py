"""bench.core.validation: strategy configs typed, ranged and normalised, so one experiment has one cell id."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from bench.core.strategy import STRATEGIES, StrategyConfig, hp
from bench.core.validation import BASE_RULES, ConfigError, validate_config
from bench.run.runner import CellConfig


def cell(**config) -> CellConfig:
    return CellConfig(scenario="ci5_glyphs", strategy="linear_probe", backbone="vit_test_micro", seed=0,
                      strategy_config=config)


def test_equal_values_written_differently_are_one_cell():
    assert len({cell(epochs=v).cell_id() for v in (2, 2.0, "2")}) == 1
    assert len({cell(lr=v).cell_id() for v in (0.001, "1e-3", "0.001", 1e-3)}) == 1  # YAML reads 1e-3 as a string
    assert validate_config(StrategyConfig, {"lr": "1e-3"}).lr == 0.001


@pytest.mark.parametrize("values, problem", [
    ({"epochs": -1}, "epochs: -1 must be >= 0"),
    ({"epochs": 2.5}, "epochs: Input should be a valid integer, got a number with a fractional part"),
    ({"epochs": True}, "epochs: True is a boolean, expected a number"),
    ({"lr": 1e30}, "lr: 1e+30 must be <= 10"),
    ({"lr": 0}, "lr: 0.0 must be > 0"),
    ({"lr": float("inf")}, "lr: inf must be a finite number"),
    ({"lr": "fast"}, "lr: Input should be a valid number"),
    ({"batch_size": 0}, "batch_size: 0 must be >= 1"),
    ({"optimizer": "sgdd"}, "optimizer: 'sgdd' must be one of 'sgd', 'adam', 'adamw'"),
    ({"optimizer": 3}, "optimizer: Input should be a valid string"),
    ({"momentum": 1.5}, "momentum: 1.5 must be < 1"),
    ({"weight_decay": -0.1}, "weight_decay: -0.1 must be >= 0"),
    ({"grad_clip": float("nan")}, "grad_clip: nan must be a finite number"),
    ({"eopchs": 1}, "unknown field(s) 'eopchs' (did you mean 'epochs'?)"),
])
def test_each_wrong_value_is_named_with_what_is_allowed(values, problem):
    with pytest.raises(ConfigError) as caught:
        validate_config(StrategyConfig, values)
    assert problem in str(caught.value) and str(caught.value).startswith("StrategyConfig: ")


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        validate_config(StrategyConfig, {"epochs": -1, "batch_size": 0, "optimizer": "x"})
    assert len(caught.value.problems) == 3


def test_every_registered_default_config_is_valid_and_round_trips():
    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name).config_cls
        assert validate_config(cls, cls().to_dict()) == cls(), name


def test_a_field_declares_its_own_range_with_hp():
    @dataclass(frozen=True)
    class Ranged(StrategyConfig):
        temperature: float = hp(1.0, "softmax temperature", gt=0, le=100)
        mode: str = hp("a", "a | b", choices=("a", "b"))
        count: int = hp(3, "a count")  # undeclared int: not negative

    assert validate_config(Ranged, {"temperature": "0.5"}).temperature == 0.5
    for values, problem in (({"temperature": 0}, "temperature: .*(greater than 0|must be > 0)"),
                            ({"temperature": 101}, "temperature: .*(less than or equal to 100|must be <= 100)"),
                            ({"mode": "c"}, "mode: 'c' must be one of 'a', 'b'"),
                            ({"count": -1}, "count: -1 must be >= 0")):
        with pytest.raises(ConfigError, match=problem):
            validate_config(Ranged, values)
    with pytest.raises(TypeError, match="unknown range keyword"):
        hp(1, "x", minimum=0)


def test_base_rules_cover_every_base_field():
    import dataclasses

    assert {f.name for f in dataclasses.fields(StrategyConfig)} <= set(BASE_RULES)
    assert math.isfinite(BASE_RULES["lr"].le)
