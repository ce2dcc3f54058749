"""The NLP prompt presets on CLIP's text tower: where the soft prompt sits, which layers get prefixes, and what
each preset trains."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core.data import ScenarioInfo
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone

INFO = ScenarioInfo("base_to_new", 3, ["the digit 0", "the digit 1", "the digit 2"])


def build(name: str, **config):
    torch.manual_seed(0)
    return build_strategy(name, create_backbone("clip_test_micro"), INFO, config)


def test_prompt_tuning_puts_the_soft_prompt_between_sos_and_the_handwritten_prompt():
    strategy = build("prompt_tuning", length=2)
    text = strategy.backbone.text
    words = text.tokenize(["digit digit"])[0, 1:3]  # two known tokens stand in for the learned ones
    with torch.no_grad():
        strategy.soft_prompt.copy_(text.embed_ids(words))
        ours = strategy.encode_text_features()
        expected = F.normalize(text(["digit digit a photo of a digit 1."]), dim=-1)
    assert torch.allclose(ours[1], expected[0], atol=1e-5)


def test_prefix_presets_prefix_every_text_layer_and_clear_afterwards():
    for name, mlp in (("prefix_tuning", True), ("p_tuning_v2", False)):
        strategy = build(name, length=3)
        with torch.no_grad():
            strategy.encode_text_features()
        tokens = int(strategy.ids.shape[1])
        for layer in strategy.layers:
            assert layer.last_key_length == tokens + 3
            assert layer.prefix is None
        assert (strategy.prefix.reparam is not None) == mlp


def test_prefixes_change_the_text_features_and_only_through_the_prefix():
    strategy = build("p_tuning_v2", length=2)
    text = strategy.backbone.text
    with torch.no_grad():
        plain = F.normalize(text(["a photo of a digit 0."]), dim=-1)[0]
        strategy.prefix.embedding.zero_()  # zero keys and values still take attention mass: features change
        zero_prefixed = strategy.encode_text_features()[0]
        after = F.normalize(text(["a photo of a digit 0."]), dim=-1)[0]
    assert not torch.allclose(plain, zero_prefixed, atol=1e-4)
    assert torch.equal(plain, after)  # the encoder itself is untouched once the prefixes are cleared
