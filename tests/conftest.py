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


# Tests that must share a pytest-xdist worker under `make test` (--dist loadgroup): the modules whose tests share an
# expensive module-scoped fixture (a finished run, the wheel, the HTML page and Chromium, a cached listing), and each
# strategy's tests of the contract module (its lru_cached contract and stream runs). Done here, from the test ids:
# xdist 3.8's `xdist_group` marks are a no-op under pytest 9.2 (xdist renames items through `_nodeid`, which pytest
# 9 no longer reads: checked, the marked tests of one group ran on both workers).
SHARED_MODULES = ("tests/test_bad_inputs.py", "tests/test_package.py", "tests/test_html_report.py",
                  "tests/test_fast_reporting.py")
PER_STRATEGY = "tests/test_strategy_contract.py"


def xdist_scope(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, its strategy in the contract module, else itself."""
    path, _, rest = nodeid.partition("::")
    if path in SHARED_MODULES:
        return path
    if path == PER_STRATEGY and "[" in rest:
        return f"{path}[{rest.split('[', 1)[1].split('-', 1)[0].rstrip(']')}]"
    return nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return Grouped(config, log)


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


@pytest.fixture(scope="session")
def scene_coca_entailment_finetuned():
    """The embedded scene CoCa fine-tuned on entailment (75 steps, lr 2e-3), with its accuracy on the held-out
    scenes before training: shared by the method-learning and robustness tests so it is trained once per session."""
    from bench.multimodal.loop import TrainSettings, evaluate, train
    from bench.multimodal.methods import build_method
    from bench.multimodal.scene_model import load_scene_coca
    from scenarios.multimodal.streams import build_split

    model = load_scene_coca()
    method = build_method("finetune")
    method.attach(model)
    held_out = build_split("entailment", "test", 0, 10)
    start = evaluate(model, held_out, method=method)["accuracy"]
    train(model, build_split("entailment", "train", 0, 40), TrainSettings(steps=75, lr=2e-3), method)
    return model, method, start, held_out
