"""Mechanism tests of OFA-style prompts on a CoCa encoder-decoder (`strategies/ofa_prompt_coca.py`), on the random
micro CoCa."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from bench.core.data import Batch, ScenarioInfo
from bench.core.strategy import build_strategy, count_trainable
from bench.models.backbones import CocaBackbone, create_backbone
from bench.models.text import prompt_name
from scenarios.glyphs import GLYPH_CLASSES
from strategies._vit_prompting import PrefixAttention

NAMES = [c.name for c in GLYPH_CLASSES[:5]]
INFO = ScenarioInfo("class_incremental", len(NAMES), NAMES)
_PROTOTYPE: list[CocaBackbone] = []


def micro() -> CocaBackbone:
    if not _PROTOTYPE:
        torch.manual_seed(0)
        _PROTOTYPE.append(create_backbone("coca_test_micro"))
    return copy.deepcopy(_PROTOTYPE[0])


def pixels(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def brute_force_scores(coca: CocaBackbone, x: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """Each (image, caption) pair on its own: sum of log p(token | image, earlier tokens), no padding anywhere."""
    out = torch.zeros(len(x), len(captions))
    for j, caption in enumerate(captions):
        ids = coca.tokenize([caption])
        for i in range(len(x)):
            logp = coca.caption_logits(coca.image_tokens(x[i:i + 1]), ids).log_softmax(-1)[0]
            out[i, j] = logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].sum()
    return out


def test_caption_scores_equal_per_pair_teacher_forced_likelihood():
    coca = micro().eval()
    captions = ["a photo of a digit 7.", "digit 1.", "a photo of a greek letter lambda."]  # unequal lengths: padding
    x = pixels()
    with torch.no_grad():
        scores = coca.caption_scores(coca.image_tokens(x), coca.tokenize(captions))
        chunked = coca.caption_scores(coca.image_tokens(x), coca.tokenize(captions), max_elements=1)
        expected = brute_force_scores(coca, x, captions)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(chunked, scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("where,encoder,decoder", [("encoder", True, False), ("decoder", False, True),
                                                   ("both", True, True)])
def test_prefixes_reach_exactly_the_chosen_stacks_and_layers(where, encoder, decoder):
    coca = micro()
    s = build_strategy("ofa_prompt_coca", coca, INFO, {"length": 3, "where": where, "depth": 1}).eval()
    enc, dec = list(coca.visual.blocks), list(coca.decoder_blocks)
    assert isinstance(enc[0].attn, PrefixAttention) == encoder and isinstance(dec[0].attn, PrefixAttention) == decoder
    assert not any(isinstance(b.attn, PrefixAttention) for b in enc[1:] + dec[1:])  # depth 1: first layer only
    assert not any(isinstance(b.attn, PrefixAttention) for b in coca.model.text_decoder.cross_attn)
    with torch.no_grad():
        s(pixels())
    if encoder:
        assert enc[0].attn.last_key_length == 17 + 3  # class token + 16 patches, plus the prefix
    if decoder:
        assert dec[0].attn.last_key_length == s.class_ids.shape[1] + 1 + 3  # + CoCa's appended CLS, + prefix
    assert all(w.prefix is None for ws in s.wrappers.values() for w in ws)  # cleared after the pass


def test_empty_prefix_scores_are_the_frozen_models_caption_likelihoods():
    plain = micro().eval()
    s = build_strategy("ofa_prompt_coca", copy.deepcopy(plain), INFO, {"length": 0}).eval()
    x = pixels()
    captions = [s.cfg.template.format(prompt_name(n)) for n in NAMES]
    with torch.no_grad():
        torch.testing.assert_close(s(x), brute_force_scores(plain, x, captions), rtol=1e-4, atol=1e-4)


def test_a_decoder_prefix_changes_the_scores_and_an_encoder_prefix_changes_the_image_tokens():
    plain = micro().eval()
    x = pixels()
    with torch.no_grad():
        base = build_strategy("ofa_prompt_coca", copy.deepcopy(plain), INFO, {"length": 0})(x)
        dec = build_strategy("ofa_prompt_coca", copy.deepcopy(plain), INFO,
                             {"length": 2, "where": "decoder", "init_std": 1.0}).eval()
        enc = build_strategy("ofa_prompt_coca", copy.deepcopy(plain), INFO,
                             {"length": 2, "where": "encoder", "init_std": 1.0}).eval()
        assert not torch.allclose(dec(x, dec.frozen_inputs(x)), base, atol=1e-3)
        assert not torch.allclose(enc(x), base, atol=1e-3)
        # the decoder-only variant leaves the encoder untouched: its image tokens are the frozen model's
        torch.testing.assert_close(dec.frozen_inputs(x), plain.image_tokens(x))


def test_decoder_only_prompts_read_cached_image_tokens_instead_of_pixels():
    s = build_strategy("ofa_prompt_coca", micro(), INFO, {"length": 2, "where": "decoder"}).eval()
    assert not s.needs_pixels
    x = pixels()
    with torch.no_grad():
        torch.testing.assert_close(s(None, s.frozen_inputs(x)), s(x, None))
    enc = build_strategy("ofa_prompt_coca", micro(), INFO, {"length": 2, "where": "encoder"})
    assert enc.needs_pixels and enc.frozen_inputs(x) is None


def test_training_loss_is_the_teacher_forced_caption_cross_entropy():
    s = build_strategy("ofa_prompt_coca", micro(), INFO, {"length": 2}).eval()
    x, y = pixels(2), torch.tensor([3, 0])
    loss = s.training_loss(Batch(x=x, y=y), None)
    with torch.no_grad(), s._prompted():
        terms = []
        for i in range(2):
            caption = s.cfg.template.format(prompt_name(NAMES[int(y[i])]))
            ids = s.backbone.tokenize([caption])
            logits = s.backbone.caption_logits(s.backbone.image_tokens(x[i:i + 1]), ids)
            terms.append(F.cross_entropy(logits[0], ids[0, 1:], reduction="none"))
    torch.testing.assert_close(loss, torch.cat(terms).mean(), rtol=1e-4, atol=1e-5)  # mean over real tokens


def test_trainable_count_with_reparameterisation():
    coca = micro()
    d_enc, d_dec = coca.visual.embed_dim, coca.decoder_width
    n_enc, n_dec = coca.visual.num_blocks, len(coca.decoder_blocks)
    s = build_strategy("ofa_prompt_coca", coca, INFO, {"length": 3, "reparam": True, "reparam_hidden": 8})
    mlp = lambda d, n: (d * 8 + 8) + (8 * n * 2 * d + n * 2 * d)  # noqa: E731
    assert count_trainable(s) == 3 * d_enc + mlp(d_enc, n_enc) + 3 * d_dec + mlp(d_dec, n_dec)


def test_generate_returns_one_text_per_image():
    s = build_strategy("ofa_prompt_coca", micro(), INFO, {"length": 2})
    texts = s.generate(pixels(2))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


@pytest.mark.parametrize("cfg", [{"where": "middle"}, {"depth": 99}, {"template": "no slot"}])
def test_bad_config_is_named(cfg):
    with pytest.raises(ValueError, match=next(iter(cfg))):
        build_strategy("ofa_prompt_coca", micro(), INFO, cfg)


def test_paper_suite_puts_the_official_prefix_settings_on_a_real_coca():
    from bench.core.strategy import STRATEGIES
    from bench.models.backbones import BACKBONES
    from bench.run.suite import expand, load_suite

    cells, _ = expand(load_suite("paper_coca_b32"))
    assert {BACKBONES.get(c.backbone).family for c in cells} == {"coca"}
    configs = {c.label or c.strategy: STRATEGIES.get(c.strategy).config_cls.from_dict(c.strategy_config)
               for c in cells}
    assert {cfg.where for cfg in configs.values()} == {"both", "encoder", "decoder"}
    full = configs["ofa_prompt_coca"]
    assert (full.length, full.depth, full.reparam, full.optimizer, full.lr) == (100, 0, False, "adam", 0.03)


def test_folded_candidate_decoding_equals_the_decoder_on_repeated_pairs():
    """`caption_scores` folds the candidates into the cross-attention's query axis and runs the first (image-free)
    self-attention block once per candidate; under decoder prefixes it must give the library decoder's logits on
    every (image, candidate) pair, and the same gradient with respect to the pixels (attacks use it)."""
    s = build_strategy("ofa_prompt_coca", micro(), INFO, {"length": 2, "where": "both"}).eval()
    with torch.no_grad():
        for generator in s.generators.values():
            generator.embedding.normal_(0, 0.5)  # visible prefixes, not near-zero ones
    coca, ids = s.backbone, s.class_ids
    x = pixels(2).requires_grad_(True)
    with s._prompted():
        image_tokens, text_tokens = coca.image_tokens(x), coca.text_tokens(ids)[:, :-1]
        folded = coca._candidate_logits(image_tokens, text_tokens)
        n = len(ids)
        pairs = coca.model.text_decoder(image_tokens.repeat_interleave(n, dim=0), text_tokens.repeat(2, 1, 1))
    torch.testing.assert_close(folded, pairs.view(2, n, text_tokens.shape[1], -1), rtol=1e-5, atol=1e-5)
    grad_folded, = torch.autograd.grad(folded.square().sum(), x, retain_graph=True)
    grad_pairs, = torch.autograd.grad(pairs.square().sum(), x)
    scale = float(grad_pairs.abs().max())  # float32 sums in another order: differences relative to the largest
    torch.testing.assert_close(grad_folded, grad_pairs, rtol=1e-4, atol=1e-5 * scale)
