"""CODA-Prompt: attention-weighted component sums, Gram-Schmidt growth per task, past components frozen."""
from __future__ import annotations

import math

import torch

import strategies.coda_prompt as coda
from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy, freeze_all_but_trainable
from bench.models.backbones import create_backbone

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])
SMALL = {"components_per_task": 3, "max_tasks": 3, "length": 4, "layers": (0, 6)}  # blocks 0 and 1 of 2


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
    assert len(strategy.layers) >= 2
    for i, layer in enumerate(strategy.layers):  # each layer weighs its components with its own keys/attention
        alpha = coda.component_weights(query, strategy.keys[i, :n], strategy.attention[i, :n])
        mixed = sum(alpha[:, m, None, None] * strategy.prompts[i, m] for m in range(n))  # (B, Lp, d)
        keys, values = seen[layer]
        assert torch.allclose(keys, mixed[:, :2], atol=1e-6) and torch.allclose(values, mixed[:, 2:], atol=1e-6)


def test_gram_schmidt_subtracts_projections_row_by_row_as_the_official_code():
    # Earlier rows [1,0,0] and [1,1,0] (trained: not orthogonal); the fresh draw v = [1,2,3].
    # Official: v - (v.u1/u1.u1) u1 - (v.u2/u2.u2) u2 = [1,2,3] - [1,0,0] - 1.5 [1,1,0] = [-1.5, 0.5, 3], normalised.
    # (Removing the earlier rows' span exactly would give [0, 0, 1].)
    rows = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    out = coda.gram_schmidt_rows(rows, 2, 3, draw=lambda width: torch.tensor([1.0, 2.0, 3.0]))
    expected = torch.tensor([-1.5, 0.5, 3.0])
    assert torch.allclose(out[2], expected / expected.norm(), atol=1e-6)
    assert torch.equal(out[:2], rows[:2])


def test_new_components_start_orthonormal_per_layer_to_untrained_earlier_ones():
    strategy = build()
    before = strategy.keys[:, :3].detach().clone()
    strategy.before_task(ctx(1))
    for i in range(len(strategy.layers)):
        for rows in (strategy.keys[i], strategy.attention[i], strategy.prompts[i].flatten(1)):
            block = rows[:6].detach()  # task 0's rows are still as initialised: exact Gram-Schmidt over all six
            assert torch.allclose(block @ block.t(), torch.eye(6), atol=1e-5)
    assert torch.equal(strategy.keys[:, :3], before)  # earlier components are kept
    # every layer has its own keys and attention vectors (the official CodaPrompt: one K and A per layer)
    assert not torch.allclose(strategy.keys[0], strategy.keys[1], atol=1e-3)
    assert not torch.allclose(strategy.attention[0], strategy.attention[1], atol=1e-3)


def test_orthogonality_penalty_is_summed_over_the_layers():
    strategy = build(ortho_weight=2.0).train()
    x = torch.rand(2, 3, 32, 32)
    batch = Batch(x=x, y=torch.tensor([0, 0]), cached=strategy.backbone(x).detach())
    with torch.no_grad():
        strategy.keys[-1, :3] += 0.5  # only the last layer's keys leave orthonormality (all else: penalty ~0)
        loss = strategy.training_loss(batch, ctx(0))
        ce = torch.nn.functional.cross_entropy(coda.mask_logits(strategy(x, batch.cached), [0]), batch.y)
        expected = 2.0 * coda.ortho_penalty(strategy.keys[-1, :3])
    assert expected > 1e-3
    assert torch.allclose(loss - ce, expected, atol=1e-5)


def test_official_schedule_steps_per_epoch_and_ends_at_1_6_percent():
    from bench.train.harness import warmup_cosine

    factor = warmup_cosine(total_steps=20, warmup_steps=0, schedule="coda_cosine", steps_per_epoch=4)  # 5 epochs
    per_step = [factor(step) for step in range(20)]
    per_epoch = [math.cos(99 * math.pi * e / (200 * 4)) for e in range(5)]
    assert per_step == [f for f in per_epoch for _ in range(4)]
    assert abs(per_step[-1] - 0.0157) < 1e-4 and per_step[0] == 1.0
    assert build().cfg.schedule == "coda_cosine"


def test_only_the_current_tasks_components_receive_gradient():
    strategy = build(ortho_weight=0.1).train()
    strategy.before_task(ctx(1))
    x = torch.rand(4, 3, 32, 32)
    batch = Batch(x=x, y=torch.tensor([1, 1, 1, 1]), cached=strategy.backbone(x).detach())
    strategy.training_loss(batch, ctx(1)).backward()
    for grad in (strategy.keys.grad.transpose(0, 1), strategy.attention.grad.transpose(0, 1),
                 strategy.prompts.grad.transpose(0, 1)):
        assert grad[:3].abs().sum() == 0  # task 0: frozen
        assert grad[3:6].abs().sum() > 0  # task 1: trains
        assert grad[6:].abs().sum() == 0  # task 2: not in use yet
