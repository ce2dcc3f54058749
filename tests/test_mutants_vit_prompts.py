"""Mechanism tests for the ViT prompt-pool strategies (DualPrompt, CODA-Prompt) written to fail on the one-line bugs
of issue 20 (key/value halves swapped, the E-prompt's value half used twice, the pull term's sign flipped or
dropped, the class mask dropped, the head reading token 1, a query that is not the frozen backbone's feature).

The expected numbers come from `reference_vit`, a from-scratch forward of the timm ViT with prefix attention
written from the paper's equations (softmax(q [K_p; K]^T / sqrt(d)) [V_p; V]), never from the code under test.
`scripts/mutate.py` plants each bug and checks that this file fails.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy, mask_logits
from bench.models.backbones import create_backbone

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])
EMPTY = TensorData(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))


def ctx(index: int, train_classes: list[int]) -> TaskContext:
    return TaskContext(index=index, num_steps=4, train_classes=train_classes,
                       seen_classes=sorted(set(range(index + 1)) | set(train_classes)), domain=None,
                       train_data=EMPTY)


def pixels(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def heads(t: torch.Tensor, num_heads: int) -> torch.Tensor:
    b, n, d = t.shape
    return t.reshape(b, n, num_heads, d // num_heads).transpose(1, 2)


def reference_vit(pristine, x: torch.Tensor, prefixes: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Tokens after the final norm of a timm ViT (`pristine`: an unwrapped backbone) whose block i also attends to
    `prefixes[i] = (keys, values)`, each `(B, L, d)`, used directly as keys and values."""
    enc = pristine.encoder
    t = pristine.embed(x)
    for i, blk in enumerate(enc.blocks):
        attn = blk.attn
        h = blk.norm1(t)
        b, n, d = h.shape
        q, k, v = F.linear(h, attn.qkv.weight, attn.qkv.bias).split(d, dim=-1)
        q, k, v = (heads(z, attn.num_heads) for z in (q, k, v))
        if i in prefixes:
            pk, pv = prefixes[i]
            k = torch.cat([heads(pk, attn.num_heads), k], dim=2)
            v = torch.cat([heads(pv, attn.num_heads), v], dim=2)
        weights = (q @ k.transpose(-1, -2) / (d // attn.num_heads) ** 0.5).softmax(dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(b, n, d)
        t = t + blk.ls1(attn.proj(out))
        t = t + blk.ls2(blk.mlp(blk.norm2(t)))
    return enc.norm(t)


# ------------------------------------------------------------------------------------------------ DualPrompt
def dualprompt(**config):
    """DualPrompt on the 2-block micro ViT: G-prompt at block 0, E-prompt at block 1, random (distinct) halves."""
    torch.manual_seed(0)
    backbone = create_backbone("vit_test_micro")
    pristine = copy.deepcopy(backbone).eval()  # before the strategy wraps its attention
    settings = {"g_layers": (0,), "e_layers": (6,), "g_length": 2, "e_length": 3, "pool_size": 4,
                "pull_weight": 0.7, **config}
    strategy = build_strategy("dualprompt", backbone, INFO, settings)
    return strategy, pristine


def dualprompt_reference_logits(strategy, pristine, x: torch.Tensor, task: int) -> torch.Tensor:
    b = x.shape[0]
    g = strategy.g_prompt[0]  # (2, Lg, d): key half, value half
    e = strategy.e_prompts[task, 0]  # (2, Le, d)
    prefixes = {0: (g[0].expand(b, -1, -1), g[1].expand(b, -1, -1)),
                1: (e[0].expand(b, -1, -1), e[1].expand(b, -1, -1))}
    return strategy.head(reference_vit(pristine, x, prefixes)[:, 0])  # the class token


def test_dualprompt_logits_follow_the_g_and_e_prefixes_key_half_then_value_half_and_read_the_class_token():
    strategy, pristine = dualprompt()
    strategy.before_task(ctx(2, [2]))
    strategy.train()  # training: task 2's own E-prompt
    x = pixels()
    with torch.no_grad():
        torch.testing.assert_close(strategy(x), dualprompt_reference_logits(strategy, pristine, x, 2),
                                   atol=1e-5, rtol=1e-5)


def test_dualprompt_loss_is_masked_cross_entropy_plus_weighted_pull_towards_the_task_key():
    strategy, pristine = dualprompt()
    strategy.before_task(ctx(1, [1, 2]))
    strategy.train()
    x, y = pixels(4, seed=1), torch.tensor([1, 2, 2, 1])
    with torch.no_grad():
        query = pristine(x)
        loss = strategy.training_loss(Batch(x=x, y=y, cached=query), ctx(1, [1, 2]))
        logits = dualprompt_reference_logits(strategy, pristine, x, 1)
    masked = logits.clone()
    masked[:, [0, 3]] = float("-inf")  # classes outside the task
    cos = F.cosine_similarity(query, strategy.keys[1].unsqueeze(0), dim=-1)
    expected = F.cross_entropy(masked, y) + 0.7 * (1 - cos).mean()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(mask_logits(logits, [1, 2]).argmax(-1), masked.argmax(-1))


def test_the_query_is_the_untouched_backbones_pooled_feature():
    """Replaces `frozen_inputs(x) == backbone(x)`, which compares the wrapped backbone with itself: here the
    reference is a copy taken before the strategy wrapped any attention layer."""
    for name, config in (("dualprompt", {"g_length": 2, "e_length": 3, "pool_size": 4}),
                         ("coda_prompt", {"components_per_task": 3, "max_tasks": 3, "length": 4})):
        torch.manual_seed(0)
        backbone = create_backbone("vit_test_micro")
        pristine = copy.deepcopy(backbone).eval()
        strategy = build_strategy(name, backbone, INFO, config).eval()
        x = pixels(2, seed=3)
        with torch.no_grad():
            expected = pristine(x)
            torch.testing.assert_close(strategy.frozen_inputs(x), expected, atol=1e-6, rtol=1e-6)
            # uncached forward computes the same query as the cached one
            torch.testing.assert_close(strategy(x), strategy(x, expected), atol=1e-6, rtol=1e-6)


def test_dualprompt_uncached_forward_selects_by_the_frozen_query():
    strategy, pristine = dualprompt()
    strategy.before_task(ctx(3, [3]))
    strategy.eval()
    x = pixels(3, seed=4)
    with torch.no_grad():
        query = pristine(x)
        keys = torch.randn(4, query.shape[1], generator=torch.Generator().manual_seed(5))
        keys[2] = query[0] * 3  # image 0 -> task 2
        keys[0] = query[1]  # image 1 -> task 0
        strategy.keys.copy_(keys)
        chosen = strategy.select(query)
        assert chosen[0] == 2 and chosen[1] == 0
        expected = torch.cat([dualprompt_reference_logits(strategy, pristine, x[i:i + 1], int(chosen[i]))
                              for i in range(3)])
        torch.testing.assert_close(strategy(x), expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- CODA-Prompt
def test_coda_loss_masks_the_classes_outside_the_task():
    torch.manual_seed(0)
    strategy = build_strategy("coda_prompt", create_backbone("vit_test_micro"), INFO,
                              {"components_per_task": 3, "max_tasks": 3, "length": 4})
    strategy.before_task(ctx(1, [2, 3]))
    strategy.train()
    x, y = pixels(4, seed=6), torch.tensor([2, 3, 3, 2])
    with torch.no_grad():
        query = strategy.frozen_inputs(x)
        logits = strategy(x, query)
        loss = strategy.training_loss(Batch(x=x, y=y, cached=query), ctx(1, [2, 3]))
    expected = F.cross_entropy(logits[:, [2, 3]], y - 2)  # softmax over the task's classes only
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    assert (F.cross_entropy(logits, y) - expected).abs() > 1e-3  # the mask matters on these numbers
