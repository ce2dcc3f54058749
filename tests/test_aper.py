"""APER: adapters train on the first task only; prototypes are class means of [frozen, adapted] features."""
from __future__ import annotations

import torch

from bench.contract.tiny import tiny_scenario
from bench.core.data import TaskContext
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.train.harness import run_stream


def test_adapts_on_the_first_task_only_then_stores_concatenated_class_means():
    scenario = tiny_scenario("class_incremental")
    torch.manual_seed(0)
    strategy = build_strategy("aper", create_backbone("vit_test_micro"), scenario.info(),
                              {"epochs": 2, "batch_size": 8, "lr": 0.05, "reduction": 4})
    snapshots = []
    original = strategy.after_task

    def record(ctx: TaskContext) -> None:
        original(ctx)
        snapshots.append({n: p.detach().clone() for n, p in strategy.adapters.named_parameters()})

    strategy.after_task = record
    init = {n: p.detach().clone() for n, p in strategy.adapters.named_parameters()}
    result = run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), seed=0,
                        show_progress=False)
    first, second = snapshots
    assert any(not torch.equal(init[n], first[n]) for n in init)  # task 1 adapted the model
    assert all(torch.equal(first[n], second[n]) for n in init)  # task 2 trained nothing
    assert result.losses[1] != result.losses[1]  # NaN: no gradient step in the second task

    strategy.eval()
    with torch.no_grad():
        sums = torch.zeros_like(strategy.prototypes)
        counts = torch.zeros(len(sums))
        for step in scenario.steps:
            x = step.data.images.float() / 255
            feats = torch.cat([strategy.backbone(x), strategy.adapted(x)], dim=-1)
            assert not torch.allclose(feats[:, :32], feats[:, 32:])  # the adapted half differs from the frozen
            sums.index_add_(0, step.data.labels, feats)
            counts.index_add_(0, step.data.labels, torch.ones(len(x)))
    expected = sums / counts.clamp(min=1).unsqueeze(1)
    assert torch.allclose(strategy.prototypes, expected, atol=1e-5)


def test_official_adapter_runs_parallel_to_each_mlp_on_the_unnormalised_input():
    torch.manual_seed(0)
    strategy = build_strategy("aper", create_backbone("vit_test_micro"), tiny_scenario("class_incremental").info(),
                              {"reduction": 4}).eval()
    bb = strategy.backbone
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(strategy.adapted(x), bb(x), atol=1e-6)  # zero up-projection: starts as pretrained
        for adapter in strategy.adapters:
            adapter.up.weight.normal_(0, 0.5)
            adapter.up.bias.normal_(0, 0.5)
        tokens = bb.embed(x)
        for block, adapter in zip(bb.blocks, strategy.adapters):  # the official Block with ffn_option="parallel"
            h = tokens + block.attn(block.norm1(tokens))
            tokens = h + block.mlp(block.norm2(h)) + 0.1 * adapter.up(torch.relu(adapter.down(h)))
        expected = bb.finalize(tokens)
        ours = strategy.adapted(x)
        assert not torch.allclose(ours, bb(x), atol=1e-3)
        assert torch.allclose(ours, expected, atol=1e-5)
    assert (strategy.cfg.adapter_scale, strategy.cfg.adapter_dropout) == (0.1, 0.1)


def test_first_task_head_is_a_cosine_classifier_with_a_learnable_scale():
    torch.manual_seed(0)
    info = tiny_scenario("class_incremental").info()
    strategy = build_strategy("aper", create_backbone("vit_test_micro"), info, {})
    head = strategy.head
    features = torch.randn(3, strategy.backbone.num_features)
    with torch.no_grad():
        head.sigma.fill_(4.0)
        expected = 4.0 * torch.nn.functional.normalize(features, dim=-1) @ \
            torch.nn.functional.normalize(head.weight, dim=-1).t()
        assert torch.allclose(head(features), expected, atol=1e-6)
    assert any(p is head.sigma for _, p in strategy.trainable_parameters())
    old = build_strategy("aper_bottleneck", create_backbone("vit_test_micro"), info, {})
    assert isinstance(old.head, torch.nn.Linear) and old.cfg.adapter == "bottleneck"
