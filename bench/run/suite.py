"""Suites: versioned YAML files naming scenarios, strategies, backbones and seeds; validated on load."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.core.strategy import STRATEGIES
from bench.models.backbones import BACKBONES
from bench.run.runner import CellConfig

SUITE_DIR = Path(__file__).resolve().parents[1] / "suites"


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and every wrong field."""


class StrategyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    label: str | None = None  # a name for this variant on leaderboards (default: the strategy name)
    families: list[str] | None = None  # backbone families to run on (default: the strategy's first one)
    config: dict[str, Any] = Field(default_factory=dict)  # overrides of the strategy's config fields
    scenarios: list[str] | None = None  # restrict to these scenarios (default: every supported one)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: int
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0])
    backbones: dict[str, str] = Field(default_factory=lambda: {"vit": "vit_glyph_tiny", "clip": "clip_glyph_tiny"})
    scenarios: list[str]
    strategies: list[StrategyEntry]
    scenario_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per scenario: builder params
    robustness: dict[str, Any] | None = None

    @field_validator("backbones")
    @classmethod
    def _known_backbones(cls, value: dict[str, str]) -> dict[str, str]:
        for family, name in value.items():
            spec = BACKBONES.get(name)
            if spec.family != family:
                raise ValueError(f"backbone {name!r} is a {spec.family!r} backbone, listed under {family!r}")
        return value

    @field_validator("robustness")
    @classmethod
    def _robustness_settings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from bench.eval.robustness import RobustnessConfig  # a wrong field fails here, not after every cell's training

        RobustnessConfig.from_dict(value)
        return value


def suite_path(name_or_path: str) -> Path:
    """The YAML file of a suite given by name (`bench/suites/<name>.yaml`) or path."""
    path = Path(name_or_path)
    return SUITE_DIR / f"{name_or_path}.yaml" if not path.suffix else path


def load_suite(name_or_path: str) -> Suite:
    """A suite by name (`bench/suites/<name>.yaml`) or path, with every field checked."""
    path = suite_path(name_or_path)
    if not path.exists():
        known = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
        raise SuiteError(f"no suite {name_or_path!r}; known suites: {', '.join(known)}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    try:
        return Suite.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SuiteError(f"{path}: {problems}") from None
    except KeyError as error:  # an unknown backbone name
        raise SuiteError(f"{path}: {error}") from None


def expand(suite: Suite, strategies: list[str] | None = None, scenarios: list[str] | None = None,
           seeds: list[int] | None = None) -> tuple[list[CellConfig], list[str]]:
    """The suite's cells, optionally filtered. Unknown names raise before anything runs. Returns the cells and a
    note per (strategy, scenario) pair skipped because the strategy does not support that scenario kind."""
    from scenarios.catalog import SCENARIOS

    for name in strategies or []:
        STRATEGIES.get(name)
    for name in list(scenarios or []) + suite.scenarios:
        SCENARIOS.get(name)
    entries = [e for e in suite.strategies if strategies is None or e.name in strategies]
    extra = [s for s in strategies or [] if s not in {e.name for e in suite.strategies}]
    entries += [StrategyEntry(name=s) for s in extra]  # a registered strategy the suite does not list
    for entry in suite.strategies:  # an entry limited to scenarios the suite never runs would silently vanish
        outside = sorted(set(entry.scenarios or ()) - set(suite.scenarios))
        if outside:
            raise SuiteError(f"suite {suite.name!r}: {entry.label or entry.name!r} lists scenarios {outside} that are "
                             f"not in the suite's scenarios {list(suite.scenarios)}")
    cells, skipped = [], []
    for entry in entries:
        cls = STRATEGIES.get(entry.name)
        cls.config_cls.from_dict(entry.config)  # a wrong field fails here, before training
        families = entry.families or [cls.backbone_families[0]]
        for scenario in scenarios or suite.scenarios:
            if entry.scenarios is not None and scenario not in entry.scenarios and scenarios is None:
                continue
            kind = SCENARIOS.get(scenario).kind
            if kind not in cls.supported_scenarios:
                skipped.append(f"{entry.name} on {scenario}: {kind} not supported")
                continue
            for family in families:
                if family not in suite.backbones:
                    raise SuiteError(f"suite {suite.name!r} names no {family!r} backbone for {entry.name!r}")
                for seed in seeds or suite.seeds:
                    cells.append(CellConfig(scenario=scenario, strategy=entry.name, backbone=suite.backbones[family],
                                            seed=seed, strategy_config=dict(entry.config),
                                            scenario_overrides=dict(suite.scenario_overrides.get(scenario, {})),
                                            robustness=suite.robustness, label=entry.label))
    return cells, skipped
