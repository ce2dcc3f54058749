"""What checking and expanding a suite needs to know about strategies, backbones and scenario builders, from the
live registries (imports every strategy, hence torch) or from the cached listing (`bench.run.listing`), so that
`promptshift plan` names a suite's cells without loading torch.

A strategy's config class lives in its module, beside the torch code; the listing keeps each config's fields
(name, type, default, declared range), and `config_fields` / `listed_config_class` rebuild an equal frozen dataclass
from them. `bench.core.validation` checks and normalises values by the dataclass's fields alone, so the rebuilt class
gives the same values, the same errors and, through `CellConfig.cell_id(config_cls)`, the same cell ids
(tests/test_fast_reporting.py holds the default suite to that). A field whose type is not a plain one below (a
plugin's own type) makes the listing unusable for plans: the live registries are used instead.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from bench.core.config_values import plain_config
from bench.core.registry import Registry
from bench.core.validation import RULE_KEYS, validate_config

# The field types a config may have for the listing to stand for it (every built-in config's are among these).
PLAIN_TYPES: dict[str, Any] = {
    "bool": bool, "int": int, "float": float, "str": str, "tuple": tuple,
    "tuple[int, ...]": tuple[int, ...], "tuple[float, ...]": tuple[float, ...], "tuple[str, ...]": tuple[str, ...],
    "int | None": int | None, "float | None": float | None, "str | None": str | None,
}


@dataclass(frozen=True)
class ListedStrategy:
    """The parts of a registered strategy class that a suite's expansion reads."""

    name: str
    backbone_families: tuple[str, ...]
    supported_scenarios: tuple[str, ...]
    config_cls: type


@dataclass(frozen=True)
class ListedBackbone:
    family: str


@dataclass(frozen=True)
class Catalog:
    """Strategies and backbones by name (registries, or look-alikes built from the listing), and the scenario
    override keys each scenario's builder takes (None: ask the builder, which imports it)."""

    strategies: Registry
    backbones: Registry
    accepted_overrides: Callable[[str], list[str] | None] = lambda name: None


def live_catalog() -> Catalog:
    """The registries (every built-in strategy imported; plugins as already loaded), with the seq2seq strategies of
    the multimodal task kinds and their backbone (`bench.run.seq2seq_strategies`)."""
    import strategies  # noqa: F401  (registers the built-in strategies)
    from bench.core.strategy import STRATEGIES
    from bench.models.backbones import BACKBONES
    from bench.run.seq2seq_strategies import BACKBONE_FAMILY, with_seq2seq

    return Catalog(*with_seq2seq(STRATEGIES, BACKBONES, ListedBackbone(BACKBONE_FAMILY)))


def _type_name(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))


def config_fields(config_cls: type) -> list[dict[str, Any]]:
    """A config class's fields in order, as JSON data: name, type, default and declared range (a field built by a
    default factory is listed without its default, and with a type no plan rebuilds)."""
    return [{"name": f.name, "rules": {k: f.metadata[k] for k in RULE_KEYS if k in f.metadata},
             **({"type": _type_name(f.type), "default": f.default} if f.default is not dataclasses.MISSING
                else {"type": "(default factory)", "default": None})}
            for f in dataclasses.fields(config_cls)]


def listed_config_class(name: str, fields: list[dict[str, Any]]) -> type | None:
    """A frozen dataclass equal to the listed config class (same fields, types, defaults, ranges, `to_dict` and
    `from_dict`), or None when a field's type is not one of `PLAIN_TYPES`."""
    if any(f["type"] not in PLAIN_TYPES for f in fields):
        return None
    specs = []
    for f in fields:
        default = f["default"]
        if f["type"].startswith("tuple") and isinstance(default, list):
            default = tuple(default)  # JSON has no tuples
        rules = {k: tuple(v) if isinstance(v, list) else v for k, v in f["rules"].items()}
        specs.append((f["name"], PLAIN_TYPES[f["type"]], dataclasses.field(default=default, metadata=rules)))
    return dataclasses.make_dataclass(name, specs, frozen=True, namespace={
        "to_dict": plain_config, "from_dict": classmethod(validate_config)})


def listed_catalog(data: dict[str, Any]) -> Catalog | None:
    """The catalog from a listing (`bench.run.listing.listing()`), or None when one of its configs cannot be
    rebuilt (or the listing predates the fields)."""
    strategies: Registry[ListedStrategy] = Registry("strategy")
    for name, info in data["strategies"].items():
        if "fields" not in info:
            return None
        config_cls = listed_config_class(info["config_class"], info["fields"])
        if config_cls is None:
            return None
        strategies.add(name, ListedStrategy(name, tuple(info["backbones"]), tuple(info["scenarios"]), config_cls))
    backbones: Registry[ListedBackbone] = Registry("backbone")
    for name, info in data["backbones"].items():
        backbones.add(name, ListedBackbone(info["family"]))
    accepted = {name: info.get("overrides") for name, info in data["scenarios"].items()}
    return Catalog(strategies, backbones, accepted.get)


def registered_names() -> tuple[Registry, Registry]:
    """The registered strategies' and backbones' names, built-in and installed (entry points), as registries whose
    entries are their names: this process's own registries once it has imported them, else the cached listing's
    (no torch while the listing is current)."""
    import sys

    if "bench.core.strategy" in sys.modules and "strategies" in sys.modules:
        from bench.contract.plugins import load_entry_points
        from bench.core.strategy import STRATEGIES
        from bench.models.backbones import BACKBONES

        load_entry_points()  # installed packages' strategies count as registered (the maintainer installed them)
        return STRATEGIES, BACKBONES
    from bench.run.listing import listing

    data = listing()
    strategies: Registry[str] = Registry("strategy")
    backbones: Registry[str] = Registry("backbone")
    for name in data["strategies"]:
        strategies.add(name, name)
    for name in data["backbones"]:
        backbones.add(name, name)
    return strategies, backbones
