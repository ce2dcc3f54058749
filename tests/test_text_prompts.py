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


def test_p_tuning_places_the_encoded_prompts_around_the_class_name():
    strategy = build("p_tuning", prompt_tokens=(2, 1))
    text = strategy.backbone.text
    words = text.tokenize(["photo digit of"])[0, 1:4]  # known tokens stand in for the encoder's output
    strategy.encoder.forward = lambda: text.embed_ids(words)
    with torch.no_grad():
        ours = strategy.encode_text_features()
        expected = F.normalize(text(["photo digit digit 2 of."]), dim=-1)  # prompt_name drops the article
    assert torch.allclose(ours[2], expected[0], atol=1e-5)


def test_p_tuning_prompts_come_from_a_bidirectional_lstm_and_an_mlp():
    strategy = build("p_tuning", prompt_tokens=(2, 2))
    enc = strategy.encoder
    assert enc.lstm.bidirectional and enc.lstm.num_layers == 2 and enc.lstm.hidden_size * 2 == enc.embedding.embedding_dim
    with torch.no_grad():
        before = enc()
        expected = enc.mlp(enc.lstm(enc.embedding.weight.unsqueeze(0))[0])[0]
        assert torch.allclose(before, expected)
        enc.embedding.weight[-1] += 1.0  # the last position's embedding reaches the first output backwards
        after = enc()
    assert not torch.allclose(before[0], after[0], atol=1e-6)
    trainable = {id(p) for _, p in strategy.trainable_parameters()}
    assert trainable == {id(p) for p in enc.parameters()}


def test_p_tuning_v2_drops_prefix_entries_while_training_only():
    strategy = build("p_tuning_v2", length=50)
    assert strategy.cfg.prefix_dropout == 0.1 and build("prefix_tuning").cfg.prefix_dropout == 0.0
    raw = strategy.prefix().detach()
    strategy.train()
    dropped = strategy.prefixes().detach()
    zeros = (dropped == 0).float().mean()
    assert 0.05 < zeros < 0.15  # about 10% of the keys and values dropped
    kept = dropped != 0
    assert torch.allclose(dropped[kept], raw[kept] / 0.9)  # the rest rescaled, as nn.Dropout
    strategy.eval()
    assert torch.equal(strategy.prefixes().detach(), raw)


def test_prefix_tuning_evaluates_from_prefixes_folded_out_of_the_mlp():
    strategy = build("prefix_tuning", length=2).eval()
    with torch.no_grad():
        with_mlp = strategy.encode_text_features()
    strategy.after_task(None)
    assert torch.equal(strategy.folded, strategy.prefix().detach())
    with torch.no_grad():
        for p in strategy.prefix.reparam.parameters():
            p.zero_()  # the MLP no longer matters to evaluation once folded
        folded = strategy.encode_text_features()
    assert torch.allclose(folded, with_mlp, atol=1e-6)
    strategy.train()  # training (the next task) goes on through the MLP
    assert torch.equal(strategy.prefixes(), strategy.prefix())
