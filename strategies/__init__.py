"""Strategies: one file per method. Importing this package registers every module in it."""
from __future__ import annotations

import importlib
import pkgutil

from bench.core.strategy import STRATEGIES, register_strategy  # noqa: F401  (re-exported for plugin authors)


def load_all() -> None:
    """Import every strategy module of this package (each registers itself)."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


load_all()
