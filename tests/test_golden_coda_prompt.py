"""CODA-Prompt against numbers produced by the official code (tests/golden/coda_prompt_*.json say how; regenerate
with scripts/golden/coda_prompt.py): the official ViT's weights loaded into timm's, the official components loaded
into ours, the same input, then logits, loss and gradients compared."""
from __future__ import annotations


import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from golden_fixtures import TOL, load, official_vit

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])


def strategy_from(tensors: dict[str, torch.Tensor], meta: dict):
    setting = meta["setting"]
    config = {"layers": tuple(setting["layers"]), "components_per_task": setting["pool"] // setting["tasks"],
              "max_tasks": setting["tasks"], "length": setting["length"], "ortho_weight": setting["ortho_mu"]}
    strategy = build_strategy("coda_prompt", official_vit(tensors, setting), INFO, config)
    empty = TensorData(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    ctx = TaskContext(index=1, num_steps=2, train_classes=setting["train_classes"], seen_classes=[0, 1, 2, 3],
                      domain=None, train_data=empty)
    strategy.before_task(ctx)
    layers = setting["layers"]
    per_layer = {part: torch.stack([tensors[f"e_{part}_{l}"] for l in layers]) for part in ("k", "a")}
    with torch.no_grad():
        for name, part in (("keys", "k"), ("attention", "a")):
            ours = getattr(strategy, name)
            if ours.dim() == 3:  # one set per prompted layer
                ours.copy_(per_layer[part])
            else:  # one set shared by all layers: only expressible when the official layers agree
                assert torch.equal(per_layer[part], per_layer[part][:1].expand_as(per_layer[part])), \
                    f"the official {name} differ per layer; ours has one set for all layers"
                ours.copy_(per_layer[part][0])
        for i, l in enumerate(layers):
            strategy.prompts[i].copy_(tensors[f"e_p_{l}"])
        strategy.head.weight.copy_(tensors["head.weight"])
        strategy.head.bias.copy_(tensors["head.bias"])
    return strategy, ctx


def check(name: str) -> None:
    tensors, meta = load(name)
    strategy, ctx = strategy_from(tensors, meta)
    x, y = tensors["x"], tensors["y"].long()
    strategy.train()
    with torch.no_grad():
        torch.testing.assert_close(strategy.frozen_inputs(x), tensors["query"], **TOL)
        torch.testing.assert_close(strategy(x), tensors["train_logits"], **TOL)
    loss = strategy.training_loss(Batch(x=x, y=y), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    layers = meta["setting"]["layers"]
    grad_k = torch.stack([tensors[f"grad.e_k_{l}"] for l in layers])
    grad_a = torch.stack([tensors[f"grad.e_a_{l}"] for l in layers])
    shared = strategy.keys.dim() == 2
    torch.testing.assert_close(strategy.keys.grad, grad_k.sum(0) if shared else grad_k, **TOL)
    torch.testing.assert_close(strategy.attention.grad, grad_a.sum(0) if shared else grad_a, **TOL)
    for i, l in enumerate(layers):
        torch.testing.assert_close(strategy.prompts.grad[i], tensors[f"grad.e_p_{l}"], **TOL)
    torch.testing.assert_close(strategy.head.weight.grad, tensors["grad.head.weight"], **TOL)
    strategy.eval()
    with torch.no_grad():
        torch.testing.assert_close(strategy(x), tensors["eval_logits"], **TOL)


def test_coda_prompt_with_one_key_set_matches_the_official_code_given_equal_keys_per_layer():
    check("coda_prompt_shared")


def test_coda_prompt_matches_the_official_code_with_per_layer_keys_and_penalty():
    check("coda_prompt_layered")
