"""Prefix tuning and P-tuning v2 against Hugging Face PEFT (tests/golden/peft_*.json say how; regenerate with
scripts/golden/peft_prefix.py): PEFT's prefix encoder weights loaded into ours must give the same per-layer prefix
keys and values, and our prefix attention, given GPT-2's attention weights, the same outputs as GPT-2 under PEFT."""
from __future__ import annotations


import pytest
import torch
from torch import nn

from strategies._vit_prompting import PrefixAttention, PrefixGenerator, prefix_heads
from strategies.text_prompts import PrefixTuning, PrefixTuningConfig, PTuningV2Config
from golden_fixtures import load

TOL = dict(atol=1e-5, rtol=1e-5)


def generator_from(tensors: dict[str, torch.Tensor], setting: dict, config) -> PrefixGenerator:
    """Our prefix generator as the preset builds it, holding PEFT's weights."""
    reparam = config.reparam
    assert reparam == setting["prefix_projection"]
    gen = PrefixGenerator(setting["virtual_tokens"], setting["layers"], setting["width"], reparam,
                          setting["encoder_hidden"] or 0, PrefixTuning.activation).eval()
    with torch.no_grad():
        gen.embedding.copy_(tensors["encoder.embedding.weight"])
        if reparam:
            for ours, theirs in ((gen.reparam[0], "transform.0"), (gen.reparam[2], "transform.2")):
                ours.weight.copy_(tensors[f"encoder.{theirs}.weight"])
                ours.bias.copy_(tensors[f"encoder.{theirs}.bias"])
    return gen


def gpt2_attention(tensors: dict[str, torch.Tensor], layer: int, setting: dict) -> nn.MultiheadAttention:
    """GPT-2's attention of `layer` as an nn.MultiheadAttention (Conv1D computes x @ W + b: W transposed)."""
    mha = nn.MultiheadAttention(setting["width"], setting["heads"], batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(tensors[f"gpt2.{layer}.c_attn.weight"].t())
        mha.in_proj_bias.copy_(tensors[f"gpt2.{layer}.c_attn.bias"])
        mha.out_proj.weight.copy_(tensors[f"gpt2.{layer}.c_proj.weight"].t())
        mha.out_proj.bias.copy_(tensors[f"gpt2.{layer}.c_proj.bias"])
    return mha.eval()


@pytest.mark.parametrize("name,config", [("peft_prefix_tuning", PrefixTuningConfig()),
                                         ("peft_p_tuning_v2", PTuningV2Config())])
def test_prefixes_and_prefix_attention_match_peft(name, config):
    tensors, meta = load(name)
    setting = meta["setting"]
    gen = generator_from(tensors, setting, config)
    with torch.no_grad():
        per_layer = gen()
    tokens = setting["tokens"]
    causal = torch.full((tokens, tokens), float("-inf")).triu(1)
    for layer in range(setting["layers"]):
        keys, values = prefix_heads(per_layer[layer], setting["heads"])
        torch.testing.assert_close(keys[0], tensors[f"prefix.{layer}.keys"], **TOL)
        torch.testing.assert_close(values[0], tensors[f"prefix.{layer}.values"], **TOL)
        attention = PrefixAttention(gpt2_attention(tensors, layer, setting))
        attention.prefix = (keys, values)
        hidden = tensors[f"attn.{layer}.input"]
        with torch.no_grad():
            out, _ = attention(hidden, hidden, hidden, need_weights=False, attn_mask=causal)
        torch.testing.assert_close(out, tensors[f"attn.{layer}.output"], **TOL)
