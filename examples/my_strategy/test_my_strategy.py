"""The example plugin passes `run_bench.py check-plugin`, run programmatically as a user would from the shell."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.contract.check import check_plugin
from bench.core.strategy import STRATEGIES

PLUGIN = Path(__file__).with_name("layernorm_tuning.py")


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """The plugin's strategy is registered for this test only."""
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))


def test_example_plugin_passes_every_check():
    import strategies  # noqa: F401  (built-ins registered first, as run_bench.py does)

    results = check_plugin(PLUGIN)
    failed = [r.line() for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert {r.strategy for r in results} == {"ln_tune"}
    assert {r.where for r in results if r.where} == {"vit_test_micro / class_incremental",
                                                     "clip_test_micro / class_incremental"}
