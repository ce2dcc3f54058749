"""CoOp and CoCoOp against numbers produced by the official code (tests/golden/coop.json and cocoop.json say how;
regenerate with scripts/golden/coop.py): the same tiny CLIP (BPE vocabulary, OpenAI layout), context, meta-net and
images, then logits, loss and gradients compared."""
from __future__ import annotations


import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from golden_fixtures import TOL, load, tiny_clip


def build(name: str, tensors: dict[str, torch.Tensor], s: dict):
    info = ScenarioInfo("base_to_new", len(s["classes"]), s["classes"])
    strategy = build_strategy(name, tiny_clip(tensors, s), info, {"n_ctx": s["n_ctx"], "ctx_init": s["ctx_init"]})
    # the context starts as the official one: the embeddings of "a photo of a"
    torch.testing.assert_close(strategy.ctx.detach().reshape(tensors["ctx"].shape), tensors["ctx"], **TOL)
    classes = list(range(len(s["classes"])))
    empty = TensorData(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    ctx = TaskContext(index=0, num_steps=1, train_classes=classes, seen_classes=classes, domain=None,
                      train_data=empty)
    return strategy, ctx


def test_coop_matches_the_official_code():
    tensors, meta = load("coop")
    strategy, ctx = build("coop", tensors, meta["setting"])
    strategy.train()
    x, y = tensors["x"], tensors["y"].long()
    cached = strategy.frozen_inputs(x).detach()
    logits = strategy(x, cached)
    torch.testing.assert_close(logits, tensors["logits"], **TOL)
    loss = strategy.training_loss(Batch(x=x, y=y, cached=cached), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    torch.testing.assert_close(strategy.ctx.grad.reshape(tensors["grad.ctx"].shape), tensors["grad.ctx"], **TOL)


def test_cocoop_matches_the_official_code():
    tensors, meta = load("cocoop")
    strategy, ctx = build("cocoop", tensors, meta["setting"])
    layers = {"linear1": strategy.meta_net[0], "linear2": strategy.meta_net[2]}
    with torch.no_grad():
        for name, layer in layers.items():
            layer.weight.copy_(tensors[f"meta_net.{name}.weight"])
            layer.bias.copy_(tensors[f"meta_net.{name}.bias"])
    x, y = tensors["x"], tensors["y"].long()
    strategy.train()
    cached = strategy.frozen_inputs(x).detach()
    loss = strategy.training_loss(Batch(x=x, y=y, cached=cached), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    torch.testing.assert_close(strategy.ctx.grad.reshape(tensors["grad.ctx"].shape), tensors["grad.ctx"], **TOL)
    for name, layer in layers.items():
        torch.testing.assert_close(layer.weight.grad, tensors[f"grad.meta_net.{name}.weight"], **TOL)
        torch.testing.assert_close(layer.bias.grad, tensors[f"grad.meta_net.{name}.bias"], **TOL)
    strategy.eval()
    with torch.no_grad():
        torch.testing.assert_close(strategy(x, cached), tensors["logits"], **TOL)
