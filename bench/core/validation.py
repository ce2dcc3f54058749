"""One validation layer for what a user writes: strategy configs are typed, ranged and normalised with pydantic.

Strategy configs stay frozen dataclasses (the contract), but every value a user gives (suite YAML, `--set`,
a submission) passes through `pydantic.TypeAdapter(config_cls)` first, so that:
- types are checked and values normalised: `epochs` 2, 2.0 and "2" all become 2, and `lr: 1e-3` (a string to
  PyYAML) becomes 0.001, so one experiment has one cell id;
- ranges hold: the base optimisation knobs have the rules in `BASE_RULES`; every other numeric field must be
  finite and, for integers, not negative, unless its `hp(...)` declares its own range (`ge`, `gt`, `le`,
  `choices`);
- every error names the field, its value and what is allowed.
Suites and submissions are pydantic models too (`bench.run.suite`, `bench.run.record`), so one system checks all.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

LR_MAX = 10.0  # no optimiser this suite uses trains with a larger step; 1e30 is a typo, not a setting


@dataclass(frozen=True)
class Rule:
    """The allowed values of one config field (None: unbounded on that side)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None

    def problem(self, value: Any) -> str | None:
        """Why `value` breaks this rule, or None."""
        if self.choices is not None:
            return None if value in self.choices else f"must be one of {', '.join(map(repr, self.choices))}"
        if not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        for bound, holds, text in ((self.ge, lambda b: value >= b, ">="), (self.gt, lambda b: value > b, ">"),
                                   (self.le, lambda b: value <= b, "<="), (self.lt, lambda b: value < b, "<")):
            if bound is not None and not holds(bound):
                return f"must be {text} {bound:g}"
        return None


# The knobs of bench.core.strategy.StrategyConfig that the harness reads. Kept here, not in the field lines of
# StrategyConfig, so a field added there (e.g. `schedule`) only needs a line here.
BASE_RULES: dict[str, Rule] = {
    "epochs": Rule(ge=0),
    "batch_size": Rule(ge=1),
    "optimizer": Rule(choices=("sgd", "adam", "adamw")),
    "lr": Rule(gt=0, le=LR_MAX),
    "momentum": Rule(ge=0, lt=1),
    "weight_decay": Rule(ge=0, le=1),
    "warmup_epochs": Rule(ge=0),
    "grad_clip": Rule(ge=0),
    "augment": Rule(choices=("none", "shift_scale", "rrc_flip")),
    "augment_views": Rule(ge=0),
    "schedule": Rule(choices=("cosine", "constant", "coda_cosine")),
    "warmup_lr": Rule(ge=0, le=LR_MAX),
}
RULE_KEYS = ("ge", "gt", "le", "lt", "choices")


class ConfigError(ValueError):
    """A config value is wrong; `problems` holds one "field: message" line per wrong field."""

    def __init__(self, owner: str, problems: list[str]) -> None:
        super().__init__(f"{owner}: " + "; ".join(problems))
        self.owner = owner
        self.problems = problems


def rule_for(field: dataclasses.Field) -> Rule:
    """The rule of one field: its `hp(..., ge=..)` metadata, else the base rule, else the generic one."""
    declared = {k: field.metadata[k] for k in RULE_KEYS if k in field.metadata}
    if declared:
        return Rule(**declared)
    if field.name in BASE_RULES:
        return BASE_RULES[field.name]
    return Rule(ge=0) if field.type in ("int", int) else Rule()


@lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def _is_bool_for_number(field: dataclasses.Field, value: Any) -> bool:
    # pydantic's lax mode reads `true` as 1; in a config that is always a slip (a flag given to a count).
    return isinstance(value, bool) and field.type in ("int", "float", int, float)


def validate_config(cls: type, values: dict[str, Any]) -> Any:
    """An instance of the frozen dataclass `cls` from plain `values`: typed, normalised and range-checked.

    Raises ConfigError naming every unknown or wrong field (with the valid fields or the allowed range)."""
    if not isinstance(values, dict):
        raise ConfigError(cls.__name__, [f"expected a mapping of field: value, got {type(values).__name__}"])
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        import difflib

        hints = [f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, fields, 1))
                 else repr(name) for name in unknown]
        raise ConfigError(cls.__name__, [f"unknown field(s) {', '.join(hints)}; valid fields: {sorted(fields)}"])
    problems = [f"{name}: {value!r} is a boolean, expected a number" for name, value in values.items()
                if _is_bool_for_number(fields[name], value)]
    if problems:
        raise ConfigError(cls.__name__, problems)
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        cfg = _adapter(cls).validate_python(converted)
    except ValidationError as error:
        raise ConfigError(cls.__name__, [f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']} (got {e['input']!r})"
                                         for e in error.errors()]) from None
    for name, field in fields.items():
        value = getattr(cfg, name)
        problem = rule_for(field).problem(value)
        if problem:
            problems.append(f"{name}: {value!r} {problem}")
    if problems:
        raise ConfigError(cls.__name__, problems)
    return cfg
