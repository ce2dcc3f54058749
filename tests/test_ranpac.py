"""RanPAC: the head is the ridge closed form on ReLU random features, lambda chosen on held-out training data."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from bench.contract.check import tint_by_class
from bench.contract.tiny import tiny_scenario
from bench.core.data import ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.train.harness import run_stream

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])


def build(info: ScenarioInfo = INFO, **config):
    torch.manual_seed(0)
    return build_strategy("ranpac", create_backbone("vit_test_micro"), info, config)


def step(features: torch.Tensor, labels: list[int], index: int) -> TaskContext:
    data = TensorData(torch.zeros(len(labels), 3, 32, 32, dtype=torch.uint8), torch.tensor(labels), features)
    return TaskContext(index=index, num_steps=2, train_classes=sorted(set(labels)), seen_classes=[0, 1, 2, 3],
                       domain=None, train_data=data)


def official_ridge(h: np.ndarray, y: np.ndarray, fit: np.ndarray, val: np.ndarray) -> float:
    """The official `optimise_ridge_parameter` loop (one solve per lambda), on our held-out split."""
    ridges = 10.0 ** np.arange(-8, 9)
    gram, q = h[fit].T @ h[fit], h[fit].T @ y[fit]
    losses = [np.mean((h[val] @ np.linalg.solve(gram + r * np.eye(len(gram)), q) - y[val]) ** 2) for r in ridges]
    return float(ridges[int(np.argmin(losses))])


def test_head_equals_the_ridge_closed_form_accumulated_over_tasks():
    strategy = build(projection_dim=24)
    d = strategy.backbone.num_features
    gen = torch.Generator().manual_seed(3)
    f1, f2 = torch.randn(10, d, generator=gen), torch.randn(10, d, generator=gen)
    y1, y2 = [0, 1] * 5, [2, 3] * 5
    strategy.after_task(step(f1, y1, 0))
    strategy.after_task(step(f2, y2, 1))

    w = strategy.projection.double().numpy()
    h = np.maximum(np.concatenate([f1, f2]).astype(np.float64) @ w, 0.0)  # ReLU(f W)
    y = np.eye(4)[y1 + y2]
    lam = float(strategy.ridge)
    expected = np.linalg.solve(h.T @ h + lam * np.eye(24), h.T @ y)
    assert np.allclose(strategy.head.double().numpy(), expected, rtol=1e-4, atol=1e-5)

    # lambda is the official selection on the last task's data alone: fit on 80%, MSE on a held-out 20%
    order = torch.randperm(10, generator=torch.Generator().manual_seed(strategy.split_seed)).numpy()
    assert lam == official_ridge(h[10:], y[10:], order[2:], order[:2])
    logits = strategy(None, f2[:3])
    assert np.allclose(logits.double().numpy(), h[10:13] @ expected, rtol=1e-4, atol=1e-5)


def test_projection_width_follows_the_papers_ratio_and_stays_fixed():
    strategy = build()
    assert strategy.projection.shape == (32, round(10000 / 768 * 32))
    assert not any(True for _ in strategy.trainable_parameters())


def test_learns_a_class_incremental_stream_above_chance():
    scenario = tiny_scenario("class_incremental")
    n = scenario.info().num_classes
    steps = [dataclasses.replace(s, data=tint_by_class(s.data, n)) for s in scenario.steps]
    evals = [dataclasses.replace(e, data=tint_by_class(e.data, n)) for e in scenario.eval_sets]
    strategy = build(scenario.info())
    result = run_stream(strategy, steps, evals, torch.device("cpu"), seed=0, show_progress=False)
    final = sum(result.acc_matrix[-1]) / len(evals)
    assert final > 1 / n + 0.3, result.acc_matrix  # chance is 1/8


def test_lambda_grid_is_the_official_one():
    ours = [10.0 ** k for k in range(*build().cfg.ridge_exponents)]
    assert len(ours) == 17 and np.allclose(ours, 10.0 ** np.arange(-8, 9), rtol=1e-12, atol=0)


def test_on_clip_the_features_are_the_pre_projection_class_token():
    torch.manual_seed(0)
    strategy = build_strategy("ranpac", create_backbone("clip_test_micro").visual, INFO, {})
    visual = strategy.backbone
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        features = strategy.frozen_inputs(x)
        assert features.shape == (3, visual.embed_dim)
        assert not torch.allclose(features, visual(x), atol=1e-3)  # not the projected embedding
        assert torch.allclose(features @ visual.encoder.proj, visual(x), atol=1e-5)  # proj(feature) = embedding
    assert strategy.projection.shape[0] == visual.embed_dim
    assert strategy.frozen_key() == "vision.pre_projection"
    projected = build_strategy("ranpac", create_backbone("clip_test_micro").visual, INFO,
                               {"clip_feature": "projected"})
    assert projected.frozen_key() == "vision.pooled"
    with torch.no_grad():
        assert torch.allclose(projected.frozen_inputs(x), projected.backbone(x), atol=1e-6)
