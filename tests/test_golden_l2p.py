"""L2P against numbers produced by the PyTorch port of the official code, made to compute the JAX original's
function (tests/golden/l2p_*.json say how; regenerate with scripts/golden/l2p.py): query, selected prompts, loss,
gradients and test-time logits, per-image selection and batch-wise voting in training."""
from __future__ import annotations


import pytest
import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from golden_fixtures import TOL, load, official_vit

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])


@pytest.mark.parametrize("name", ["l2p_perimage", "l2p_vote"])
def test_l2p_matches_the_official_port(name):
    tensors, meta = load(name)
    s = meta["setting"]
    config = {"pool_size": s["pool_size"], "length": s["length"], "top_k": s["top_k"],
              "pull_weight": s["pull_weight"], "train_voting": s["train_voting"]}
    strategy = build_strategy("l2p", official_vit(tensors, s), INFO, config)
    with torch.no_grad():
        strategy.prompts.copy_(tensors["prompts"])
        strategy.keys.copy_(tensors["keys"])
        strategy.head.weight.copy_(tensors["head.weight"])
        strategy.head.bias.copy_(tensors["head.bias"])
    x, y = tensors["x"], tensors["y"].long()
    with torch.no_grad():
        query = strategy.frozen_inputs(x)
    torch.testing.assert_close(query, tensors["query"], **TOL)

    strategy.train()
    idx, _ = strategy.select(query)
    assert torch.equal(idx.sort(dim=1).values, tensors["train_prompt_idx"].long().sort(dim=1).values)
    empty = TensorData(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    ctx = TaskContext(index=1, num_steps=2, train_classes=s["train_classes"], seen_classes=[0, 1, 2, 3],
                      domain=None, train_data=empty)
    loss = strategy.training_loss(Batch(x=x, y=y, cached=query), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    for ours, theirs in ((strategy.prompts, "prompts"), (strategy.keys, "keys"),
                         (strategy.head.weight, "head.weight"), (strategy.head.bias, "head.bias")):
        torch.testing.assert_close(ours.grad, tensors[f"grad.{theirs}"], **TOL)

    strategy.eval()
    with torch.no_grad():
        idx, _ = strategy.select(query)
        assert torch.equal(idx.sort(dim=1).values, tensors["eval_prompt_idx"].long().sort(dim=1).values)
        torch.testing.assert_close(strategy(x, query), tensors["eval_logits"], **TOL)
