"""DAPL against numbers produced by the official code (tests/golden/dapl.json says how; regenerate with
scripts/golden/dapl.py): the same tiny CLIP (BPE vocabulary, OpenAI layout), contexts and images, then the logits of
every (domain, class) prompt and of the zero-shot prompts, the pseudo-label mask, the source and total losses and
the gradients of the domain-agnostic and domain-specific contexts."""
from __future__ import annotations


import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from golden_fixtures import TOL, load, tiny_clip


def test_dapl_matches_the_official_code():
    tensors, meta = load("dapl")
    s = meta["setting"]
    info = ScenarioInfo("domain_adaptation", len(s["classes"]), s["classes"], domains=[s["source"], s["target"]],
                        source_domain=s["source"], target_domain=s["target"])
    strategy = build_strategy("dapl", tiny_clip(tensors, s), info,
                              {"n_ctx": s["n_ctx"], "n_dmx": s["n_dmx"], "temperature": s["temperature"],
                               "tau": s["tau"], "target_weight": s["target_weight"],
                               "domain_names_in_prompt": s["domain_names_in_prompt"]})
    with torch.no_grad():  # the contexts are seed-drawn there: copied in
        strategy.ctx.copy_(tensors["init.ctx"].reshape(strategy.ctx.shape))
        strategy.domain_ctx.copy_(tensors["init.domain"])
    strategy.train()
    n_cls = len(s["classes"])
    with torch.no_grad():
        source, target = strategy.frozen_inputs(tensors["x"]), strategy.frozen_inputs(tensors["target_x"])
        for image, official in ((source, tensors["logits_x"]), (target, tensors["logits_u"])):
            # official columns: the source domain's classes, the target's, then the zero-shot prompts
            torch.testing.assert_close(strategy.domain_logits(image).flatten(1), official[:, :2 * n_cls], **TOL)
            zero_shot = strategy.backbone.logit_scale * image @ strategy.zero_shot_text().t()
            torch.testing.assert_close(zero_shot, official[:, 2 * n_cls:], **TOL)
        keep = strategy.zero_shot_probs(target).max(dim=-1).values >= strategy.cfg.tau
        assert keep.tolist() == tensors["mask"].bool().tolist()
    classes = list(range(n_cls))
    empty = TensorData(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    ctx = TaskContext(index=0, num_steps=1, train_classes=classes, seen_classes=classes, domain=None,
                      train_data=empty)
    y = tensors["y"].long()
    with torch.no_grad():
        loss_x = strategy.training_loss(Batch(x=None, y=y, cached=source), ctx)
    torch.testing.assert_close(loss_x.reshape(1), tensors["loss_x"], **TOL)
    loss = strategy.training_loss(Batch(x=None, y=y, cached=source, target_cached=target), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    torch.testing.assert_close(strategy.ctx.grad.reshape(tensors["grad.ctx"].shape), tensors["grad.ctx"], **TOL)
    torch.testing.assert_close(strategy.domain_ctx.grad, tensors["grad.domain"], **TOL)
