"""MaPLe: vision prompts are the coupling maps of the language prompts, layer by layer, in both towers."""
from __future__ import annotations

import torch

from bench.core.data import ScenarioInfo
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone

INFO = ScenarioInfo("base_to_new", 3, ["the digit 0", "the digit 1", "the digit 2"])


def inputs_of(blocks) -> tuple[list[torch.Tensor], list]:
    seen: list[torch.Tensor] = []
    handles = [b.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone())) for b in blocks]
    return seen, handles


def test_each_prompted_layer_gets_its_text_prompts_and_their_coupled_vision_prompts():
    torch.manual_seed(0)
    strategy = build_strategy("maple", create_backbone("clip_test_micro"), INFO, {}).eval()
    assert strategy.depth == 2  # J=9 of 12 layers, on a 2-layer CLIP
    clip, n = strategy.backbone, strategy.cfg.n_ctx
    vision_in, h1 = inputs_of(clip.visual.blocks)
    text_in, h2 = inputs_of(clip.text.transformer.resblocks)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        strategy(x)
    for h in h1 + h2:
        h.remove()
    with torch.no_grad():
        coupled = [f(p) for f, p in zip(strategy.couplings, [strategy.ctx, strategy.deep_text[0]])]
    # vision: appended after the patches at the input (no position) BEFORE ln_pre, as the official code, so block
    # 0 sees them normalised (the old placement after ln_pre fed them raw); replaced, raw, at block 1
    ln_pre = clip.visual.encoder.ln_pre
    assert torch.allclose(vision_in[0][:, -n:], ln_pre(coupled[0]).expand(2, -1, -1), atol=1e-6)
    assert not torch.allclose(vision_in[0][:, -n:], coupled[0].expand(2, -1, -1), atol=1e-3)
    with torch.no_grad():  # the patch tokens are the plain embedding: the pre-norm was put back after the call
        assert torch.allclose(vision_in[0][:, :-n], clip.visual.embed(x), atol=1e-6)
    assert torch.allclose(vision_in[1][:, -n:], coupled[1].expand(2, -1, -1), atol=1e-6)
    # text: right after SOS; block 1 sees the deep prompts themselves, for every class
    assert torch.allclose(text_in[1][:, 1:1 + n], strategy.deep_text[0].expand(3, -1, -1), atol=1e-6)
    pos = clip.text.positional_embedding[1:1 + n]
    assert torch.allclose(text_in[0][:, 1:1 + n], (strategy.ctx + pos).expand(3, -1, -1), atol=1e-6)


def test_context_starts_as_the_phrase_and_the_prompt_reads_the_template():
    torch.manual_seed(0)
    strategy = build_strategy("maple", create_backbone("clip_test_micro"), INFO, {"prompt_depth": 1})
    clip = strategy.backbone
    with torch.no_grad():
        ids = clip.text.tokenize(["a photo of a digit 0."])
        expected = clip.text.encode_embeddings(clip.text.embed_ids(ids), ids)
        ours = strategy.encode_text_features()[0]
    assert torch.allclose(ours, torch.nn.functional.normalize(expected[0], dim=-1), atol=1e-5)
