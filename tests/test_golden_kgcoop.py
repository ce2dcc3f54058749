"""KgCoOp against numbers produced by the official code (tests/golden/kgcoop.json says how; regenerate with
scripts/golden/kgcoop.py): the same tiny CLIP (BPE vocabulary, OpenAI layout), context and images, then logits,
the knowledge-guided penalty, the loss and the context's gradient compared."""
from __future__ import annotations


import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from golden_fixtures import TOL, load, tiny_clip


def test_kgcoop_matches_the_official_code():
    tensors, meta = load("kgcoop")
    s = meta["setting"]
    info = ScenarioInfo("base_to_new", len(s["classes"]), s["classes"])
    strategy = build_strategy("kgcoop", tiny_clip(tensors, s), info,
                              {"n_ctx": s["n_ctx"], "ctx_init": s["ctx_init"], "template": s["template"],
                               "kg_weight": s["kg_weight"]})
    # the context starts as the official one: the embeddings of "a photo of a" (ours has a leading unit axis)
    torch.testing.assert_close(strategy.ctx.detach().reshape(tensors["ctx"].shape), tensors["ctx"], **TOL)
    strategy.train()
    x, y = tensors["x"], tensors["y"].long()
    cached = strategy.frozen_inputs(x).detach()
    text = strategy.encode_text_features()
    torch.testing.assert_close(strategy.backbone.logit_scale * cached @ text.t(), tensors["logits"], **TOL)
    classes = list(range(len(s["classes"])))
    torch.testing.assert_close(strategy.knowledge_gap(text, classes).reshape(1), tensors["score"], **TOL)
    empty = TensorData(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    ctx = TaskContext(index=0, num_steps=1, train_classes=classes, seen_classes=classes, domain=None,
                      train_data=empty)
    loss = strategy.training_loss(Batch(x=x, y=y, cached=cached), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    torch.testing.assert_close(strategy.ctx.grad.reshape(tensors["grad.ctx"].shape), tensors["grad.ctx"], **TOL)
