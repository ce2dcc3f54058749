"""SimpleCIL: prototypes are exactly the class means of the frozen features; cosine scores; learns on a stream."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from bench.contract.check import tint_by_class
from bench.contract.tiny import tiny_scenario
from bench.core.data import ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.train.harness import run_stream

INFO = ScenarioInfo("domain_incremental", 3, ["a", "b", "c"])


def build(info: ScenarioInfo = INFO):
    torch.manual_seed(0)
    return build_strategy("simplecil", create_backbone("vit_test_micro"), info, {})


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def ctx_for(index: int, data: TensorData) -> TaskContext:
    return TaskContext(index=index, num_steps=2, train_classes=[0, 1, 2], seen_classes=[0, 1, 2], domain=None,
                       train_data=data)


def test_prototypes_are_class_means_of_frozen_features_over_every_step():
    strategy = build().eval()
    first = TensorData(images(6, 0), torch.tensor([0, 0, 1, 1, 1, 2]))
    second = TensorData(images(3, 1), torch.tensor([2, 0, -1]))  # -1: an unlabelled image never counts
    strategy.after_task(ctx_for(0, first))  # no cache: the strategy computes the features itself
    with torch.no_grad():
        feats = strategy.backbone(torch.cat([first.images, second.images]).float() / 255)
    second.cached = feats[6:]  # the harness's cache is read when present
    strategy.after_task(ctx_for(1, second))
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, -1])
    expected = torch.stack([feats[labels == c].mean(0) for c in range(3)])
    assert torch.allclose(strategy.prototypes, expected, atol=1e-6)


def test_logits_are_cosines_to_the_prototypes():
    strategy = build().eval()
    strategy.sums[:, :2] = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    strategy.counts[:] = 1.0
    feats = torch.zeros(2, strategy.backbone.num_features)
    feats[0, 0], feats[1, :2] = 5.0, torch.tensor([1.0, 2.0])
    logits = strategy(None, feats)
    expected = torch.tensor([[1.0, 0.0, 2 ** -0.5], [1 / 5 ** 0.5, 2 / 5 ** 0.5, 3 / 10 ** 0.5]])
    assert torch.allclose(logits, expected, atol=1e-6)
    assert torch.allclose(logits, F.cosine_similarity(feats[:, None], strategy.prototypes[None], dim=-1), atol=1e-6)


def test_learns_a_class_incremental_stream_above_chance_without_training():
    scenario = tiny_scenario("class_incremental")
    n = scenario.info().num_classes
    steps = [dataclasses.replace(s, data=tint_by_class(s.data, n)) for s in scenario.steps]
    evals = [dataclasses.replace(e, data=tint_by_class(e.data, n)) for e in scenario.eval_sets]
    strategy = build(scenario.info())
    result = run_stream(strategy, steps, evals, torch.device("cpu"), seed=0, show_progress=False)
    final = sum(result.acc_matrix[-1]) / len(evals)
    assert result.trainable_params == 0
    assert final > 1 / n + 0.3, result.acc_matrix  # every class was seen; chance is 1/8


def test_on_clip_prototypes_are_means_of_the_pre_projection_feature():
    torch.manual_seed(0)
    strategy = build_strategy("simplecil", create_backbone("clip_test_micro").visual, ScenarioInfo("class_incremental", 2,
                                                                                            ["a", "b"]), {})
    visual = strategy.backbone
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        features = strategy.frozen_inputs(x)
    assert features.shape == (4, visual.embed_dim)
    with torch.no_grad():
        assert not torch.allclose(features, visual(x), atol=1e-3)  # not the projected embedding
    assert strategy.sums.shape == (2, visual.embed_dim)
    with torch.no_grad():
        assert torch.allclose(features @ visual.encoder.proj, visual(x), atol=1e-5)
