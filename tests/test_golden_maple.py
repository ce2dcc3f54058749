"""MaPLe against numbers produced by the official code (tests/golden/maple.json says how; regenerate with
scripts/golden/maple.py): the same tiny CLIP (BPE vocabulary, OpenAI layout), prompt weights and images, then the
logits, the cross-entropy and the gradients of the context, the deeper text prompts and both coupling maps."""
from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F

from bench.core.data import ScenarioInfo
from bench.core.strategy import build_strategy
from bench.models.backbones import ClipBackbone

GOLDEN = Path(__file__).parent / "golden"
TOL = dict(atol=1e-5, rtol=1e-4)


def load(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / f"{name}.safetensors")), json.loads((GOLDEN / f"{name}.json").read_text())


def tiny_clip(tensors: dict[str, torch.Tensor], s: dict) -> ClipBackbone:
    model = open_clip.model.CLIP(**s["clip"])
    state = {k[5:]: v for k, v in tensors.items() if k.startswith("clip.")}
    table = torch.zeros_like(model.token_embedding.weight)
    table[tensors["token_ids"].long()] = tensors["token_rows"]
    state["token_embedding.weight"] = table
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= {"attn_mask"} and not unexpected
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=s["clip"]["text_cfg"]["context_length"])
    return ClipBackbone(model.eval(), tokenizer, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "golden")


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
