"""DualPrompt against numbers produced by the PyTorch port of the official code (tests/golden/dualprompt.json says
how and which reference it follows about the port's prefix reshape bug; regenerate with
scripts/golden/dualprompt.py): the port's ViT weights in timm's ViT, its G-/E-prompts, keys and head in ours,
then the query, training loss and gradients of task 1, and test-time selection and logits compared."""
from __future__ import annotations


import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from golden_fixtures import TOL, load, official_vit

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])


def ctx(index: int, train_classes: list[int]) -> TaskContext:
    empty = TensorData(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    return TaskContext(index=index, num_steps=4, train_classes=train_classes, seen_classes=[0, 1, 2, 3],
                       domain=None, train_data=empty)


def to_ours_g(t: torch.Tensor) -> torch.Tensor:
    """The port's G-prompt `(layers, 2, L, heads, head_dim)` -> ours `(layers, 2, L, d)`."""
    return t.flatten(-2)


def to_ours_e(t: torch.Tensor) -> torch.Tensor:
    """The port's E-prompts `(layers, 2, pool, L, heads, head_dim)` -> ours `(pool, layers, 2, L, d)`."""
    return t.permute(2, 0, 1, 3, 4, 5).flatten(-2)


def test_dualprompt_matches_the_official_port():
    tensors, meta = load("dualprompt")
    s = meta["setting"]
    config = {"g_layers": tuple(s["g_layers"]), "e_layers": tuple(s["e_layers"]), "g_length": s["g_length"],
              "e_length": s["e_length"], "pool_size": s["pool_size"], "pull_weight": s["pull_weight"]}
    strategy = build_strategy("dualprompt", official_vit(tensors, s), INFO, config)
    train_ctx = ctx(s["task"], s["train_classes"])
    strategy.before_task(train_ctx)
    with torch.no_grad():
        strategy.g_prompt.copy_(to_ours_g(tensors["g_prompt"]))
        strategy.e_prompts.copy_(to_ours_e(tensors["e_prompt"]))
        strategy.keys.copy_(tensors["prompt_key"])
        strategy.head.weight.copy_(tensors["head.weight"])
        strategy.head.bias.copy_(tensors["head.bias"])
    x, y = tensors["x"], tensors["y"].long()
    with torch.no_grad():
        query = strategy.frozen_inputs(x)
    torch.testing.assert_close(query, tensors["query"], **TOL)

    strategy.train()
    with torch.no_grad():
        torch.testing.assert_close(strategy(x, query), tensors["train_logits"], **TOL)
    loss = strategy.training_loss(Batch(x=x, y=y, cached=query), train_ctx)
    # the port's loss is CE - lambda * cos, ours CE + lambda * (1 - cos): equal up to lambda, same gradients
    torch.testing.assert_close(loss.reshape(1) - s["pull_weight"], tensors["loss"], **TOL)
    loss.backward()
    torch.testing.assert_close(strategy.g_prompt.grad, to_ours_g(tensors["grad.g_prompt"]), **TOL)
    torch.testing.assert_close(strategy.e_prompts.grad, to_ours_e(tensors["grad.e_prompt"]), **TOL)
    torch.testing.assert_close(strategy.keys.grad, tensors["grad.prompt_key"], **TOL)
    torch.testing.assert_close(strategy.head.weight.grad, tensors["grad.head.weight"], **TOL)
    torch.testing.assert_close(strategy.head.bias.grad, tensors["grad.head.bias"], **TOL)

    strategy.before_task(ctx(s["pool_size"] - 1, [3]))  # every key trained: the port matches the whole pool
    strategy.eval()
    with torch.no_grad():
        assert strategy.select(query).tolist() == tensors["eval_prompt_idx"].long().tolist()
        torch.testing.assert_close(strategy(x, query), tensors["eval_logits"], **TOL)
