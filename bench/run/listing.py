"""What `list` prints: every registered strategy, scenario, backbone and suite, without importing torch when it can.

Collecting the metadata means importing every strategy, hence torch (about 2 s on its own on a busy 2-core
machine, and 13 s for everything before the lazy imports). The collected listing is a pure function of the
project's source files, the installed plugins' entry points and the given plugin files, so it is stored in the
user's cache directory under a fingerprint of those (paths, sizes, modification times): an unchanged checkout lists
in a few tens of milliseconds; any edit, plugin or install changes the fingerprint and the next `list` rebuilds it.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from scenarios.cache import cache_dir  # the project's one cache directory rule ($PROMPTSHIFT_CACHE, XDG, ~/.cache)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("bench", "strategies", "scenarios")
LISTING_VERSION = 5  # 3: strategies' docstrings; 4: config fields and scenario overrides (`bench.run.catalog`);
# 5: the seq2seq strategies of the multimodal task kinds and their scene backbone


def fingerprint(plugins: list[str]) -> str:
    """A hash of everything the listing is computed from."""
    digest = hashlib.sha256(f"listing v{LISTING_VERSION}".encode())
    files = [p for top in SOURCES for p in sorted((ROOT / top).rglob("*")) if p.suffix in (".py", ".yaml")]
    files += [Path(p).resolve() for p in plugins]
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue  # a missing plugin file: loading it reports the error
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    for entry in metadata.entry_points(group="promptshift.strategies"):
        version = entry.dist.version if entry.dist else ""
        digest.update(f"ep|{entry.name}|{entry.value}|{version}\n".encode())
    return digest.hexdigest()[:24]


def collect(plugins: list[str]) -> dict[str, Any]:
    """Import everything (the slow path) and read the registries."""
    import strategies  # noqa: F401  (registers every strategy)
    from bench.contract.plugins import load_plugins
    from bench.core.strategy import STRATEGIES
    from bench.models.backbones import BACKBONES
    from bench.run.catalog import config_fields
    from bench.run.seq2seq_strategies import BACKBONE_FAMILY, SCENE_BACKBONE, SCENE_BACKBONE_DESCRIPTION
    from bench.run.seq2seq_metrics import TASK_KIND_METRICS
    from bench.run.seq2seq_strategies import listing_entries as seq2seq_listing
    from bench.run.suite import SUITE_DIR
    from scenarios.catalog import SCENARIOS, accepted_overrides

    load_plugins(plugins)
    return {
        "strategies": {n: {"family": STRATEGIES.get(n).family, "paper": STRATEGIES.get(n).paper,
                           "backbones": list(STRATEGIES.get(n).backbone_families),
                           "scenarios": list(STRATEGIES.get(n).supported_scenarios),
                           "flags": STRATEGIES.get(n).flags.short(),
                           "config": STRATEGIES.get(n).config_cls().to_dict(),
                           "help": STRATEGIES.get(n).config_cls.help(),
                           "config_class": STRATEGIES.get(n).config_cls.__name__,
                           "fields": config_fields(STRATEGIES.get(n).config_cls),
                           "doc": inspect.getdoc(STRATEGIES.get(n)) or ""} for n in STRATEGIES.names()}
        | seq2seq_listing(),
        "scenarios": {n: {"kind": SCENARIOS.get(n).kind, "description": SCENARIOS.get(n).description,
                          "source": SCENARIOS.get(n).source, "overrides": accepted_overrides(n)}
                      for n in SCENARIOS.names()},
        "backbones": {n: {"family": BACKBONES.get(n).family, "description": BACKBONES.get(n).description}
                      for n in BACKBONES.names()}
        | {SCENE_BACKBONE: {"family": BACKBONE_FAMILY, "description": SCENE_BACKBONE_DESCRIPTION}},
        "suites": sorted(p.stem for p in SUITE_DIR.glob("*.yaml")),
        "task_kinds": dict(TASK_KIND_METRICS),
    }


def listing(plugins: list[str] | None = None, fresh: bool = False) -> dict[str, Any]:
    """The listing, from the cache when its fingerprint matches, else collected and cached (best effort: an
    unwritable cache directory only makes `list` slow)."""
    plugins = list(plugins or [])
    path = cache_dir() / f"listing-{fingerprint(plugins)}.json"
    if not fresh:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    # A process that has loaded the registries before may hold strategies that neither the sources nor the plugins
    # the fingerprint covers registered (a test's, a notebook's): its listing is returned, not cached for others.
    shareable = "bench.core.strategy" not in sys.modules
    data = collect(plugins)
    if not shareable:
        return data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".listing-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)  # atomic: concurrent `list` runs never read half a file
    except OSError:
        pass
    return data
