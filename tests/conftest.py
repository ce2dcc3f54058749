"""Shared test fixtures: tiny real scenarios and random micro backbones, so every test runs in seconds on CPU."""
from __future__ import annotations

import warnings

import pytest
import torch

warnings.filterwarnings("ignore", message="no QP solver found")
# Tiny models are all small ops: on a shared 2-core machine a second intra-op thread mostly spin-waits for a busy
# core, which made the contract runs ~30x slower (measured: 9.6 s vs 0.27 s for the same 40 steps).
torch.set_num_threads(1)

import strategies  # noqa: E402,F401  (registers every strategy)
from bench.contract.tiny import (TEST_BACKBONES, TINY_SCENARIOS,  # noqa: E402,F401  (shared with check-plugin)
                                 tiny_scenario)


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
