"""MaPLe against numbers produced by the official code (tests/golden/maple.json says how; regenerate with
scripts/golden/maple.py): the same tiny CLIP (BPE vocabulary, OpenAI layout), prompt weights and images, then the
logits, the cross-entropy and the gradients of the context, the deeper text prompts and both coupling maps."""
from __future__ import annotations


import torch
import torch.nn.functional as F

from bench.core.data import ScenarioInfo
from bench.core.strategy import build_strategy
from golden_fixtures import TOL, load, tiny_clip


def test_maple_matches_the_official_code():
    tensors, meta = load("maple")
    s = meta["setting"]
    info = ScenarioInfo("base_to_new", len(s["classes"]), s["classes"])
    strategy = build_strategy("maple", tiny_clip(tensors, s), info,
                              {"n_ctx": s["n_ctx"], "ctx_init": s["ctx_init"], "prompt_depth": s["our_prompt_depth"]})
    assert strategy.depth == s["official_prompt_depth"]
    # the context starts as the official one (the phrase's embeddings); the rest is seed-drawn there: copied in
    torch.testing.assert_close(strategy.ctx.detach(), tensors["init.ctx"], **TOL)
    ours = {"ctx": strategy.ctx, "deep_text.0": strategy.deep_text}
    for i, f in enumerate(strategy.couplings):
        ours[f"coupling.{i}.weight"], ours[f"coupling.{i}.bias"] = f.weight, f.bias
    with torch.no_grad():
        for name, p in ours.items():
            p.copy_(tensors[f"init.{name}"].reshape(p.shape))
    strategy.eval()
    logits = strategy(tensors["x"])
    torch.testing.assert_close(logits, tensors["logits"], **TOL)
    loss = F.cross_entropy(logits, tensors["y"].long())
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    for name, p in ours.items():
        torch.testing.assert_close(p.grad.reshape(tensors[f"grad.{name}"].shape), tensors[f"grad.{name}"], **TOL,
                                   msg=lambda m, name=name: f"gradient of {name}: {m}")
