"""Mechanism tests for the CLIP prompt strategies (MaPLe, PromptSRC, prefix tuning / P-tuning v2) written to fail
on the one-line bugs of issue 20: one coupling map shared by all MaPLe layers; PromptSRC's image features left
unnormalised, its vision prompts used at the input layer only, a single-template teacher; prefix keys and values
swapped, ReLU instead of tanh in prefix tuning's MLP. Expected numbers are computed here from the equations, not
by the code under test. `scripts/mutate.py` plants each bug and checks that this file fails.

The tests do not depend on where the first vision prompts sit relative to `ln_pre` (branch i20 moves them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import strategies.promptsrc as promptsrc
from bench.core.data import ScenarioInfo
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.models.text import prompt_name
from strategies._vit_prompting import PrefixAttention, prefix_heads

INFO = ScenarioInfo("base_to_new", 3, ["the digit 0", "the digit 1", "the digit 2"])


def build(name: str, **config):
    torch.manual_seed(0)
    return build_strategy(name, create_backbone("clip_test_micro"), INFO, config)


def pixels(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# -------------------------------------------------------------------------------------------------- MaPLe
def test_maple_has_one_trainable_coupling_map_per_prompted_layer():
    strategy = build("maple")
    width, vision = strategy.backbone.text.width, strategy.backbone.visual.embed_dim
    assert strategy.depth == 2
    couplings = [p for n, p in strategy.named_parameters() if n.startswith("couplings.")]
    assert sum(p.numel() for p in couplings) == strategy.depth * (width * vision + vision)  # none shared


def test_maple_vision_prompts_of_layer_i_are_coupling_map_i_of_text_prompts_of_layer_i():
    strategy = build("maple")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct maps, so sharing any of them shows
        for f in strategy.couplings:
            f.weight.copy_(torch.randn(f.weight.shape, generator=gen))
            f.bias.copy_(torch.randn(f.bias.shape, generator=gen))
        text = [strategy.ctx, strategy.deep_text[0]]
        expected = [text[i] @ strategy.couplings[i].weight.t() + strategy.couplings[i].bias for i in range(2)]
        for ours, ref in zip(strategy.vision_prompts(), expected):
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(expected[1], text[1] @ strategy.couplings[0].weight.t()
                                  + strategy.couplings[0].bias, atol=1e-3)


# ---------------------------------------------------------------------------------------------- PromptSRC
def test_promptsrc_image_features_are_unit_vectors_and_logits_are_scaled_cosines():
    strategy = build("promptsrc").eval()
    x = pixels()
    with torch.no_grad():
        image = strategy.image_features(x)
        torch.testing.assert_close(image.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=1e-5)
        text = strategy.text_features()
        torch.testing.assert_close(text.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(strategy(x), strategy.backbone.logit_scale * image @ text.t(),
                                   atol=1e-4, rtol=1e-5)


def test_promptsrc_vision_prompts_of_every_prompted_layer_act_on_the_image_features():
    strategy = build("promptsrc")
    assert strategy.depth == 2 and strategy.vision_prompts.shape[0] == 2
    strategy.vision_prompts.requires_grad_(True)
    strategy.image_features(pixels()).sum().backward()
    grad = strategy.vision_prompts.grad
    for layer in range(strategy.depth):  # the deep layer's prompts replace the input's: each gets gradient
        assert grad[layer].abs().sum() > 0, f"vision prompts of layer {layer} do not reach the image features"


def test_promptsrc_teacher_text_features_average_every_template():
    strategy = build("promptsrc")
    templates = promptsrc.TEMPLATES
    assert len(templates) > 1
    clip = strategy.backbone
    with torch.no_grad():
        per_template = [clip.encode_text([t.format(prompt_name(n)) for n in INFO.class_names]) for t in templates]
        expected = F.normalize(torch.stack(per_template).mean(0), dim=-1)
        single = F.normalize(per_template[0], dim=-1)
    torch.testing.assert_close(strategy.frozen_text, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected, single, atol=1e-3)


# --------------------------------------------------------------------------------- prefix tuning / P-tuning v2
def test_prefix_heads_take_the_key_half_first_and_the_value_half_second():
    length, heads, head_dim = 3, 2, 4
    d = heads * head_dim
    flat = torch.randn(length, 2 * d, generator=torch.Generator().manual_seed(2))
    keys, values = prefix_heads(flat, heads)
    torch.testing.assert_close(keys[0], flat[:, :d].reshape(length, heads, head_dim).transpose(0, 1))
    torch.testing.assert_close(values[0], flat[:, d:].reshape(length, heads, head_dim).transpose(0, 1))


def test_prefix_attention_attends_to_prefix_keys_and_returns_prefix_values():
    torch.manual_seed(3)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    wrapped = PrefixAttention(mha)
    x = torch.randn(2, 5, 8)
    pk, pv = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    wrapped.prefix = (pk, pv)
    with torch.no_grad():
        ours, _ = wrapped(x, x, x, need_weights=False)
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

        def split(t):
            return t.reshape(2, 5, 2, 4).transpose(1, 2)

        q, k, v = split(x @ w_q.t() + b_q), split(x @ w_k.t() + b_k), split(x @ w_v.t() + b_v)
        k, v = torch.cat([pk.expand(2, -1, -1, -1), k], 2), torch.cat([pv.expand(2, -1, -1, -1), v], 2)
        att = (q @ k.transpose(-1, -2) / 2.0).softmax(-1)
        expected = mha.out_proj((att @ v).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_prefix_tuning_mlp_is_linear_tanh_linear_and_p_tuning_v2_learns_prefixes_directly():
    strategy = build("prefix_tuning", length=3, reparam_hidden=16)
    gen = strategy.prefix
    text = strategy.backbone.text
    layers, width = len(text.transformer.resblocks), text.width
    with torch.no_grad():
        first, last = gen.reparam[0], gen.reparam[2]
        hidden = torch.tanh(gen.embedding @ first.weight.t() + first.bias)
        assert (gen.embedding @ first.weight.t() + first.bias).min() < -0.1  # tanh and ReLU differ here
        flat = hidden @ last.weight.t() + last.bias  # (length, layers * 2 * width)
        expected = flat.reshape(3, layers, 2 * width).transpose(0, 1)
        torch.testing.assert_close(gen(), expected, atol=1e-5, rtol=1e-5)
    v2 = build("p_tuning_v2", length=3).eval()  # eval: no prefix dropout (branch i20 adds it)
    with torch.no_grad():
        torch.testing.assert_close(v2.prefix(), v2.prefix.embedding.reshape(3, layers, 2 * width).transpose(0, 1))
