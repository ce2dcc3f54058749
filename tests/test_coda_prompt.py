"""CODA-Prompt: attention-weighted component sums, Gram-Schmidt growth per task, past components frozen."""
from __future__ import annotations

import math

import torch

import strategies.coda_prompt as coda
from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy, freeze_all_but_trainable
from bench.models.backbones import create_backbone

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])
SMALL = {"components_per_task": 3, "max_tasks": 3, "length": 4}


def build(**config):
    torch.manual_seed(0)
    strategy = build_strategy("coda_prompt", create_backbone("vit_test_micro"), INFO, {**SMALL, **config})
    freeze_all_but_trainable(strategy)
    return strategy


def ctx(index: int) -> TaskContext:
    empty = TensorData(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    return TaskContext(index=index, num_steps=3, train_classes=[index], seen_classes=list(range(index + 1)),
                       domain=None, train_data=empty)


def test_component_weights_are_cosines_of_the_attended_query_and_the_keys():
    query = torch.tensor([[1.0, 2.0, 0.0]])
    attention = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    keys = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    # q*A: [1,0,0] -> cos 1; [1,2,0] vs [0,1,0] -> 2/sqrt5; [0,0,0] -> 0; [2,2,0] vs [1,1,0] -> 1
    expected = torch.tensor([[1.0, 2 / math.sqrt(5), 0.0, 1.0]])
    assert torch.allclose(coda.component_weights(query, keys, attention), expected, atol=1e-6)


def test_prompt_is_the_weighted_sum_of_components_split_into_key_and_value_prefixes(monkeypatch):
    strategy = build().eval()
    seen = {}

    def capture(backbone, tokens, prefixes):
        seen.update(prefixes)
        return backbone.run_blocks(tokens)

    monkeypatch.setattr(coda, "run_with_prefixes", capture)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        query = strategy.backbone(x)
        strategy(x, query)
    n = 3  # task 0: only its own components take part
    alpha = coda.component_weights(query, strategy.keys[:n], strategy.attention[:n])
    for i, layer in enumerate(strategy.layers):
        mixed = sum(alpha[:, m, None, None] * strategy.prompts[i, m] for m in range(n))  # (B, Lp, d)
        keys, values = seen[layer]
        assert torch.allclose(keys, mixed[:, :2], atol=1e-6) and torch.allclose(values, mixed[:, 2:], atol=1e-6)


def test_new_components_start_orthonormal_to_all_earlier_ones():
    strategy = build()
    with torch.no_grad():
        strategy.keys[:3] += 0.3 * torch.randn(3, strategy.keys.shape[1])  # task 0 trained: no longer orthonormal
    before = strategy.keys[:3].detach().clone()
    strategy.before_task(ctx(1))
    for rows in (strategy.keys, strategy.attention, strategy.prompts[0].flatten(1)):
        new, old = rows[3:6].detach(), rows[:3].detach()
        assert torch.allclose(new @ new.t(), torch.eye(3), atol=1e-5)
        assert torch.allclose(new @ old.t(), torch.zeros(3, 3), atol=1e-5)
    assert torch.equal(strategy.keys[:3], before)  # earlier components are kept


def test_only_the_current_tasks_components_receive_gradient():
    strategy = build(ortho_weight=0.1).train()
    strategy.before_task(ctx(1))
    x = torch.rand(4, 3, 32, 32)
    batch = Batch(x=x, y=torch.tensor([1, 1, 1, 1]), cached=strategy.backbone(x).detach())
    strategy.training_loss(batch, ctx(1)).backward()
    for grad in (strategy.keys.grad, strategy.attention.grad, strategy.prompts.grad.transpose(0, 1)):
        assert grad[:3].abs().sum() == 0  # task 0: frozen
        assert grad[3:6].abs().sum() > 0  # task 1: trains
        assert grad[6:].abs().sum() == 0  # task 2: not in use yet
