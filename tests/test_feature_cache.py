"""The suite-wide frozen-feature cache: exact reuse, no sharing between different functions, backbones or image
sets, damaged files recomputed, one computation under concurrent processes."""
from __future__ import annotations

import multiprocessing
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch

import strategies  # noqa: F401  (registers every strategy)
from bench.contract.tiny import TEST_BACKBONES
from bench.core.data import TensorData
from bench.core.strategy import STRATEGIES, Strategy, build_strategy
from bench.models.backbones import BACKBONES, create_backbone
from bench.train.feature_cache import FeatureStore, module_fingerprint, trusted_frozen_key
from bench.train.harness import SharedFrozen, fill_cache, run_stream
from strategies.linear_probe import LinearProbe

CPU = torch.device("cpu")


def build(name: str, scenario, seed: int = 0, backbone: str = "vit_test_micro", **overrides):
    torch.manual_seed(seed)
    model = create_backbone(backbone)
    cls = STRATEGIES.get(name)
    module = model.visual if (BACKBONES.get(backbone).family == "clip" and not cls.needs_text) else model
    torch.manual_seed(seed)
    return build_strategy(name, module, scenario.info(), overrides)


def run(strategy, scenario, store: FeatureStore | None):
    return run_stream(strategy, scenario.steps, scenario.eval_sets, CPU, seed=0, show_progress=False,
                      feature_store=store)


def test_cached_features_give_exactly_the_results_of_recomputing_them(tiny, tmp_path: Path) -> None:
    scenario = tiny("class_incremental")
    plain = run(build("linear_probe", scenario, epochs=2), scenario, None)
    store = FeatureStore(tmp_path)
    first = run(build("linear_probe", scenario, epochs=2), scenario, store)
    assert store.hits == 0 and store.misses == len(scenario.steps) + len(scenario.eval_sets)
    second = run(build("linear_probe", scenario, epochs=2), scenario, store)
    assert store.hits == len(scenario.steps) + len(scenario.eval_sets)  # the second cell computed nothing
    for result in (first, second):
        assert result.acc_matrix == plain.acc_matrix and result.losses == plain.losses
        assert result.initial_accuracy == plain.initial_accuracy


def test_a_stored_entry_equals_the_recomputed_features_bit_for_bit(tiny, tmp_path: Path) -> None:
    scenario = tiny("class_incremental")
    strategy = build("partial_k", scenario)
    shared = SharedFrozen.for_strategy(strategy, FeatureStore(tmp_path))
    data = scenario.eval_sets[0].data
    stored, recomputed = TensorData(data.images, data.labels), TensorData(data.images, data.labels)
    fill_cache(strategy, stored, CPU, shared=shared)
    fill_cache(strategy, recomputed, CPU)
    read_back = TensorData(data.images, data.labels)
    fill_cache(strategy, read_back, CPU, shared=shared)
    assert shared.store.hits == 1
    assert torch.equal(stored.cached, recomputed.cached) and torch.equal(read_back.cached, recomputed.cached)


def test_strategies_sharing_a_key_share_entries_and_different_functions_never_do(tiny, tmp_path: Path) -> None:
    scenario = tiny("class_incremental")
    store = FeatureStore(tmp_path)
    sets = len(scenario.steps) + len(scenario.eval_sets)
    run(build("linear_probe", scenario), scenario, store)
    run(build("mlp_k", scenario), scenario, store)  # same key "vision.pooled": reads every entry
    assert (store.misses, store.hits) == (sets, sets)
    run(build("partial_k", scenario), scenario, store)  # another function of the same images: its own entries
    assert (store.misses, store.hits) == (2 * sets, sets)
    run(build("linear_probe", scenario, seed=1), scenario, store)  # another random backbone: its own entries
    assert (store.misses, store.hits) == (3 * sets, sets)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3 * sets


def test_the_backbone_fingerprint_sees_weights_preprocessing_and_patched_functions() -> None:
    torch.manual_seed(0)
    backbone = create_backbone("vit_test_micro")
    base = module_fingerprint(backbone)
    assert module_fingerprint(backbone) == base
    torch.manual_seed(0)
    assert module_fingerprint(create_backbone("vit_test_micro")) == base  # same weights, same fingerprint
    with torch.no_grad():
        next(backbone.parameters()).view(-1)[0] += 1e-6
    assert module_fingerprint(backbone) != base
    torch.manual_seed(0)
    other = create_backbone("vit_test_micro")
    other.mean.add_(0.01)  # a non-persistent buffer: the pixel normalisation
    assert module_fingerprint(other) != base
    torch.manual_seed(0)
    patched = create_backbone("vit_test_micro")
    patched.forward = lambda x: x  # noqa: E731 - a wrapped forward changes the function, not the weights
    assert module_fingerprint(patched) != base


def test_a_subclass_that_changes_frozen_inputs_but_inherits_the_key_is_not_shared(tiny) -> None:
    class Doubled(LinearProbe):
        def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * self.backbone(x)

    scenario = tiny("class_incremental")
    plain = build("linear_probe", scenario)
    doubled = Doubled(plain.cfg, plain.backbone, scenario.info())
    assert trusted_frozen_key(plain) == "vision.pooled"
    assert trusted_frozen_key(doubled) is None
    assert SharedFrozen.for_strategy(doubled, FeatureStore("/nonexistent")) is None


def _family_scenario(tiny, cls):
    kind = next(k for k in ("class_incremental", "domain_incremental", "domain_adaptation", "base_to_new")
                if k in cls.supported_scenarios)
    return tiny(kind)


def test_every_registered_strategy_declaring_a_key_computes_the_same_function_as_its_peers(tiny) -> None:
    """Registry-wide: strategies with the same frozen key on the same backbone and images give identical frozen
    features, so sharing an entry between them can never change a number."""
    outputs: dict[tuple[str, str], list[tuple[str, torch.Tensor]]] = defaultdict(list)
    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name)
        if cls.frozen_key is Strategy.frozen_key:
            continue  # declares no key: never shared
        for family in cls.backbone_families:
            scenario = _family_scenario(tiny, cls)
            try:
                strategy = build(name, scenario, backbone=TEST_BACKBONES[family])
            except ValueError:
                continue  # a configuration this family cannot build (e.g. a depth it lacks)
            key = trusted_frozen_key(strategy)
            if key is None:
                continue
            strategy.eval()
            images = scenario.eval_sets[0].data.images[:6].float() / 255
            with torch.no_grad():
                outputs[(family, key)].append((name, strategy.frozen_inputs(images)))
    assert outputs, "no strategy declares a frozen key"
    shared_groups = 0
    for (family, key), rows in outputs.items():
        reference_name, reference = rows[0]
        for name, out in rows[1:]:
            assert torch.equal(out, reference), f"{name} and {reference_name} share key {key!r} on {family}"
        shared_groups += len(rows) > 1
    assert shared_groups >= 2  # the pooled ViT feature and the CLIP image feature are each shared


def test_a_damaged_or_foreign_entry_is_recomputed_never_used(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    key = store.key("f", "backbone", images, 256, CPU)
    assert torch.equal(store.get_or_compute(key, lambda: torch.ones(2, 3)), torch.ones(2, 3))
    store.path(key).write_bytes(b"garbage")
    assert torch.equal(store.get_or_compute(key, lambda: torch.ones(2, 3)), torch.ones(2, 3))
    other = store.key("g", "backbone", images, 256, CPU)
    store.get_or_compute(other, lambda: torch.full((2, 3), 7.0))
    store.path(other).replace(store.path(key))  # a file whose stored key is not the one asked for
    assert torch.equal(store.get_or_compute(key, lambda: torch.ones(2, 3)), torch.ones(2, 3))
    assert store.misses == 4 and store.hits == 0


def _worker(root: str, marker_dir: str, out: "multiprocessing.Queue") -> None:
    store = FeatureStore(root)
    key = store.key("slow", "backbone", torch.zeros(1, dtype=torch.uint8), 256, CPU)

    def compute() -> torch.Tensor:
        Path(marker_dir, f"computed-{multiprocessing.current_process().pid}").touch()
        time.sleep(0.5)  # long enough that the other process arrives while this one computes
        return torch.arange(4.0)

    out.put(store.get_or_compute(key, compute).tolist())


def test_concurrent_processes_compute_an_entry_once_and_read_the_same_values(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    markers = tmp_path / "markers"
    markers.mkdir()
    workers = [ctx.Process(target=_worker, args=(str(tmp_path / "store"), str(markers), queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert results == [[0.0, 1.0, 2.0, 3.0]] * 3
    assert len(list(markers.iterdir())) == 1
    assert not list((tmp_path / "store").glob(".tmp-*"))  # no temporary file left behind
