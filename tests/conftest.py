"""Shared test fixtures: tiny real scenarios and random micro backbones, so every test runs in seconds on CPU."""
from __future__ import annotations

import warnings

import pytest

from bench.contract.tiny import TEST_BACKBONES, TINY_SCENARIOS, tiny_scenario  # noqa: F401  (shared with check-plugin)

warnings.filterwarnings("ignore", message="no QP solver found")


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # the pytest-xdist controller (`make test`) runs no test: it need not import torch and every strategy
    import torch

    # Tiny models are all small ops: on a shared 2-core machine a second intra-op thread mostly spin-waits for a
    # busy core, which made the contract runs ~30x slower (measured: 9.6 s vs 0.27 s for the same 40 steps).
    torch.set_num_threads(1)
    import strategies  # noqa: F401  (registers every strategy)


@pytest.fixture(scope="session")
def tiny():
    """`tiny(kind)` -> a built tiny scenario."""
    return tiny_scenario


@pytest.fixture(autouse=True)
def _plugins_loaded_stay_in_their_test():
    """Records name every plugin imported into their process (bench.contract.plugins.LOADED); in one pytest process
    a plugin loaded by one test would otherwise be named by the records of every later test."""
    from bench.contract import plugins

    before = dict(plugins.LOADED)
    yield
    plugins.LOADED.clear()
    plugins.LOADED.update(before)
