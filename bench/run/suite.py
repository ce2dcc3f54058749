"""Suites: versioned YAML files naming scenarios, strategies, backbones and seeds; validated on load."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from bench.core.resources import package_folder
from bench.core.safe_yaml import load_yaml
from bench.run.catalog import Catalog, live_catalog
from bench.run.cell import CellConfig
from bench.run.seq2seq_strategies import SEQ2SEQ_BACKBONES, is_seq2seq

SUITE_DIR = package_folder("bench", "suites")  # package data: found in a checkout and an installed wheel alike


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and every wrong field."""


class StrategyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    label: str | None = Field(None, min_length=1)  # a name for this variant on leaderboards (default: the strategy name)
    families: list[str] | None = None  # backbone families to run on (default: the strategy's first one)
    config: dict[str, Any] = Field(default_factory=dict)  # overrides of the strategy's config fields
    scenarios: list[str] | None = Field(None, min_length=1)  # restrict to these (default: every supported one)


# The fields of bench.run.tune.TuneBudget a suite's `tuning:` may set (named here: a suite is checked without torch,
# which bench.run.tune imports; a test keeps the two lists equal).
TUNING_FIELDS = ("lr_factors", "epochs_pixels", "epochs_cached", "epochs_per_image_text", "epochs_joint",
                 "steps_seq2seq", "knob_lr_factors", "val_tasks", "val_fraction", "seed")


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: int
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    backbones: dict[str, str] = Field(default_factory=lambda: {"vit": "vit_glyph_tiny", "clip": "clip_glyph_tiny"})
    scenarios: list[str] = Field(min_length=1)
    strategies: list[StrategyEntry] = Field(min_length=1)
    scenario_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per scenario: builder params
    # scenarios that run only the entries named (label, or name where an entry has none): a small block of rows on
    # one more scenario without the whole grid; every other scenario runs every entry that supports it
    scenario_strategies: dict[str, list[str]] = Field(default_factory=dict)
    robustness: dict[str, Any] | None = None
    # the tuning protocol's budget for this suite (`promptshift tune`; bench.run.tune.TuneBudget's fields): the same
    # grid for every entry of the suite, e.g. more seq2seq steps where a suite's tasks need them
    tuning: dict[str, Any] = Field(default_factory=dict)
    time_limit_s: float | None = Field(None, gt=0)  # wall-clock limit per cell (`run --time-limit` overrides it)
    weights: str | dict[str, str] | None = None  # local weights file(s): one for every backbone, or per family

    @field_validator("seeds", "version", "time_limit_s", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, bool) for item in items):  # pydantic would read `true` as 1
            raise ValueError(f"{value!r}: a boolean where a number belongs")
        return value

    @field_validator("backbones")
    @classmethod
    def _known_backbones(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        catalog = (info.context or {}).get("catalog") or live_catalog()
        for family, name in value.items():
            spec = catalog.backbones.get(name)
            if spec.family != family:
                raise ValueError(f"backbone {name!r} is a {spec.family!r} backbone, listed under {family!r}")
        return value

    @field_validator("tuning")
    @classmethod
    def _tuning_budget(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(TUNING_FIELDS))
        if unknown:
            raise ValueError(f"tuning: unknown field(s) {unknown}; valid: {list(TUNING_FIELDS)}")
        return value

    @field_validator("robustness")
    @classmethod
    def _robustness_settings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from bench.eval.robustness_config import RobustnessConfig  # a wrong field fails here, not after training

        RobustnessConfig.from_dict(value)
        return value


def suite_path(name_or_path: str) -> Path:
    """The YAML file of a suite name (`bench/suites/<name>.yaml`) or path; an unknown name gets a did-you-mean."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITE_DIR / f"{name_or_path}.yaml"
    if path.is_file():
        return path
    known = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
    close = difflib.get_close_matches(Path(name_or_path).stem, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    what = "is a folder, not a suite file" if path.exists() else "does not exist"
    raise SuiteError(f"no suite {name_or_path!r} ({path} {what}).{hint} Known suites: {', '.join(known)}")


def load_suite(name_or_path: str, catalog: Catalog | None = None) -> Suite:
    """A suite by name (`bench/suites/<name>.yaml`) or path, with every field checked, every strategy config and
    scenario override included, before anything is built. Errors name the file, the entry and the field.
    `catalog`: where strategies and backbones are looked up (default: the live registries)."""
    path = suite_path(name_or_path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))  # bounded aliases, no duplicate keys, BOM accepted
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: expected a mapping of suite fields, got {type(raw).__name__}")
    try:
        suite = Suite.model_validate(raw, context={"catalog": catalog})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SuiteError(f"{path}: {problems}") from None
    except KeyError as error:  # an unknown backbone name
        raise SuiteError(f"{path}: {error}") from None
    if suite.weights:  # a relative weights path is relative to the suite file, wherever the command runs
        near = lambda file: str(path.parent / Path(file).expanduser())  # noqa: E731 (absolute paths stay)
        suite.weights = {k: near(v) for k, v in suite.weights.items()} if isinstance(suite.weights, dict) \
            else near(suite.weights)
    check_suite(suite, str(path), catalog)
    return suite


def _entry_name(index: int, entry: StrategyEntry) -> str:
    return f"strategies[{index}] ({entry.label or entry.name})"


def check_suite(suite: Suite, source: str | None = None, catalog: Catalog | None = None) -> None:
    """Check what pydantic cannot see from the suite alone: strategy and scenario names, every entry's config
    against its strategy's config class, scenario override keys against the scenario builders."""
    from bench.report.intake import label_problem
    from scenarios.catalog import SCENARIOS, override_problems

    catalog = catalog or live_catalog()  # the live one registers the built-in strategies; plugins load before
    STRATEGIES = catalog.strategies  # noqa: N806  (the registry, or its look-alike from the listing)

    where = source or f"suite {suite.name!r}"
    problems = [f"scenarios: {SCENARIOS.unknown_message(n)}" for n in suite.scenarios if n not in SCENARIOS]
    for name, overrides in suite.scenario_overrides.items():
        if name not in SCENARIOS:
            problems.append(f"scenario_overrides.{name}: {SCENARIOS.unknown_message(name)}")
        elif name not in suite.scenarios:
            problems.append(f"scenario_overrides.{name}: {name!r} is not one of the suite's scenarios")
        else:
            problems += [f"scenario_overrides.{name}.{p}"
                         for p in override_problems(name, overrides, catalog.accepted_overrides(name))]
    labels = {e.label or e.name for e in suite.strategies}
    for name, only in suite.scenario_strategies.items():
        if name not in suite.scenarios:
            problems.append(f"scenario_strategies.{name}: {name!r} is not one of the suite's scenarios")
        if not only:
            problems.append(f"scenario_strategies.{name}: names no entry (leave the scenario out instead)")
        problems += [f"scenario_strategies.{name}: {label!r} is no strategy entry of the suite"
                     for label in only if label not in labels]
    for index, entry in enumerate(suite.strategies):
        if entry.name not in STRATEGIES:
            problems.append(f"{_entry_name(index, entry)}: {STRATEGIES.unknown_message(entry.name)}")
            continue
        cls = STRATEGIES.get(entry.name)
        if entry.label and label_problem(entry.label):
            problems.append(f"{_entry_name(index, entry)}: label: {label_problem(entry.label)}")
        elif entry.label and entry.label != entry.name and entry.label in STRATEGIES:
            problems.append(f"{_entry_name(index, entry)}: label: {entry.label!r} is the name of another "
                            f"registered strategy; a {entry.name!r} row must not be taken for it")
        try:
            cls.config_cls.from_dict(dict(entry.config))
        except ValueError as error:
            problems.append(f"{_entry_name(index, entry)}: config: {error}")
        for family in entry.families or []:
            if family not in cls.backbone_families:
                problems.append(f"{_entry_name(index, entry)}: families: {entry.name!r} runs on "
                                f"{list(cls.backbone_families)}, not {family!r}")
        if is_seq2seq(entry.name):  # a seq2seq method needs an encoder-decoder it can write with, not any CoCa
            for family in entry.families or [cls.backbone_families[0]]:
                backbone = suite.backbones.get(family)
                if backbone is not None and backbone not in SEQ2SEQ_BACKBONES.get(family, ()):
                    problems.append(f"{_entry_name(index, entry)}: the suite's {family!r} backbone {backbone!r} "
                                    f"cannot run seq2seq methods; on {family!r} they run on "
                                    f"{list(SEQ2SEQ_BACKBONES.get(family, ()))}")
        outside = sorted(set(entry.scenarios or ()) - set(suite.scenarios))
        if outside:  # an entry limited to scenarios the suite never runs would silently vanish
            problems.append(f"{_entry_name(index, entry)}: scenarios: {outside} are not in the suite's scenarios "
                            f"{list(suite.scenarios)}")
    weights = suite.weights if isinstance(suite.weights, dict) else {"": suite.weights} if suite.weights else {}
    for family, file in weights.items():
        field = f"weights.{family}" if family else "weights"
        if family and family not in suite.backbones:
            problems.append(f"{field}: the suite names no {family!r} backbone")
        elif not Path(file).expanduser().is_file():
            problems.append(f"{field}: {file!r} is not a file")
    if problems:
        raise SuiteError(f"{where}: " + "; ".join(problems))


def runs_on(suite: Suite, entry: StrategyEntry, scenario: str) -> bool:
    """Whether the suite runs `entry` on `scenario` as far as the suite says: the entry's own `scenarios:` limit and
    the suite's `scenario_strategies` (whether the strategy supports the scenario's kind is asked separately)."""
    if entry.scenarios is not None and scenario not in entry.scenarios:
        return False
    only = suite.scenario_strategies.get(scenario)
    return only is None or (entry.label or entry.name) in only


def _weights(suite: Suite, family: str) -> str | None:
    """The local weights file of the suite's `family` backbone (None: the backbone's default weights)."""
    chosen = suite.weights.get(family) if isinstance(suite.weights, dict) else suite.weights
    return str(Path(chosen).expanduser()) if chosen else None


def expand(suite: Suite, strategies: list[str] | None = None, scenarios: list[str] | None = None,
           seeds: list[int] | None = None, catalog: Catalog | None = None) -> tuple[list[CellConfig], list[str]]:
    """The suite's cells, optionally filtered. Unknown names, wrong configs, duplicate cells and an empty grid raise
    before anything runs. Returns the cells and a note per (strategy, scenario) pair skipped because the strategy
    does not support that scenario kind. An entry's own `scenarios:` limit holds under `scenarios` too.
    `catalog`: where strategies are looked up (default: the live registries; `bench.run.catalog`)."""
    from scenarios.catalog import SCENARIOS

    catalog = catalog or live_catalog()
    STRATEGIES = catalog.strategies  # noqa: N806  (the registry, or its look-alike from the listing)
    check_suite(suite, catalog=catalog)
    for name in strategies or []:
        STRATEGIES.get(name)
    for name in list(scenarios or []):
        SCENARIOS.get(name)
    if strategies is not None and not strategies:
        raise SuiteError("no strategies selected (an empty --strategies list)")
    if scenarios is not None and not scenarios:
        raise SuiteError("no scenarios selected (an empty --scenarios list)")
    if seeds is not None and not seeds:
        raise SuiteError("no seeds selected (an empty --seeds list)")
    entries = [e for e in suite.strategies if strategies is None or e.name in strategies]
    extra = [s for s in strategies or [] if s not in {e.name for e in suite.strategies}]
    entries += [StrategyEntry(name=s) for s in extra]  # a registered strategy the suite does not list
    cells, skipped, owner = [], [], {}
    for index, entry in enumerate(entries):
        cls = STRATEGIES.get(entry.name)
        families = entry.families or [cls.backbone_families[0]]
        for scenario in scenarios or suite.scenarios:
            if not runs_on(suite, entry, scenario):
                continue
            kind = SCENARIOS.get(scenario).kind
            if kind not in cls.supported_scenarios:
                skipped.append(f"{entry.name} on {scenario}: {kind} not supported")
                continue
            for family in families:
                if family not in suite.backbones:
                    raise SuiteError(f"suite {suite.name!r} names no {family!r} backbone for {entry.name!r}")
                for seed in seeds or suite.seeds:
                    cell = CellConfig(scenario=scenario, strategy=entry.name, backbone=suite.backbones[family],
                                      seed=seed, weights=_weights(suite, family), strategy_config=dict(entry.config),
                                      scenario_overrides=dict(suite.scenario_overrides.get(scenario, {})),
                                      robustness=suite.robustness, label=entry.label)
                    try:
                        cell_id = cell.cell_id(cls.config_cls)
                    except TypeError as error:  # e.g. a plugin config default that is not JSON data
                        raise SuiteError(f"suite {suite.name!r}: {_entry_name(index, entry)}: its config is not "
                                         f"JSON data ({error}); config values must be numbers, strings, "
                                         f"booleans, lists or mappings") from None
                    if cell_id in owner:  # one experiment listed twice: it would run once and be counted twice
                        raise SuiteError(f"suite {suite.name!r}: {_entry_name(index, entry)} repeats "
                                         f"{owner[cell_id]} ({scenario}, seed {seed}): remove one, or give it "
                                         f"a different config or label")
                    owner[cell_id] = _entry_name(index, entry)
                    cells.append(cell)
    if not cells:
        raise SuiteError(f"suite {suite.name!r}: the selection leaves no cell to run "
                         f"(strategies {strategies or 'all'}, scenarios {scenarios or suite.scenarios})")
    return cells, skipped
