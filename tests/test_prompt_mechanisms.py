"""Mechanism tests of the ViT prompt strategies (VPT, L2P, OFA-style prefixes) on the random micro backbones."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, EvalSet, ScenarioInfo, TaskContext, TensorData, TrainStep
from bench.core.strategy import STRATEGIES, build_strategy, count_trainable, freeze_all_but_trainable, mask_logits
from bench.models.backbones import create_backbone
from bench.run.suite import expand, load_suite
from bench.train.harness import run_stream
from strategies._vit_prompting import PrefixAttention

INFO = ScenarioInfo("class_incremental", 6, [f"c{i}" for i in range(6)])
FLAVOURS = ("vit", "clip")


_PROTOTYPES: dict[str, nn.Module] = {}


def micro(flavour: str):
    """A fresh micro image encoder (copied from one prototype: building CLIP's tokenizer each time is slow)."""
    if flavour not in _PROTOTYPES:
        torch.manual_seed(0)
        _PROTOTYPES[flavour] = (create_backbone("vit_test_micro") if flavour == "vit"
                                else create_backbone("clip_test_micro").visual)
    return copy.deepcopy(_PROTOTYPES[flavour])


def pixels(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def block_inputs(backbone) -> tuple[list[torch.Tensor], list]:
    seen: list[torch.Tensor] = []
    handles = [b.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
               for b in backbone.blocks]
    return seen, handles


# ------------------------------------------------------------------------------------------------------ VPT
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_vpt_deep_carries_fresh_prompts_into_every_block(flavour):
    s = build_strategy("vpt_deep", micro(flavour), INFO, {"length": 3}).eval()  # eval: prompt dropout off
    bb, p = s.backbone, s.backbone.num_prefix_tokens
    seen, handles = block_inputs(bb)
    x = pixels()
    s(x)
    assert len(seen) == bb.num_blocks
    for i, tokens in enumerate(seen):
        torch.testing.assert_close(tokens[:, p:p + 3], s.prompts[i].detach().expand(3, -1, -1), rtol=0, atol=0)
    # the non-prompt tokens entering block 0 are exactly the embeddings: positions on patches, none on prompts
    embedded = bb.embed(x)
    torch.testing.assert_close(seen[0][:, :p], embedded[:, :p], rtol=0, atol=0)
    torch.testing.assert_close(seen[0][:, p + 3:], embedded[:, p:], rtol=0, atol=0)
    for h in handles:
        h.remove()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_vpt_shallow_inserts_prompts_at_the_input_only(flavour):
    s = build_strategy("vpt_shallow", micro(flavour), INFO, {"length": 4}).eval()
    bb, p = s.backbone, s.backbone.num_prefix_tokens
    seen, _ = block_inputs(bb)
    s(pixels())
    assert s.prompts.shape == (1, 4, bb.embed_dim)
    torch.testing.assert_close(seen[0][:, p:p + 4], s.prompts[0].detach().expand(3, -1, -1), rtol=0, atol=0)
    assert seen[1].shape[1] == seen[0].shape[1]  # no further tokens added
    assert not torch.allclose(seen[1][:, p:p + 4], s.prompts[0].detach().expand(3, -1, -1))  # block 0's outputs


def test_vpt_init_and_dropout_defaults():
    s = build_strategy("vpt_deep", micro("vit"), INFO, {})
    bound = (6.0 / (3 * 8 * 8 + 32)) ** 0.5  # official VPT xavier bound, patch 8, width 32
    assert s.prompts.abs().max() <= bound and s.prompts.abs().max() > 0.8 * bound
    assert s.cfg.prompt_dropout == 0.1
    assert build_strategy("vpt_shallow", micro("vit"), INFO, {}).cfg.prompt_dropout == 0.0
    s.train()
    assert not s.backbone.training and s.training  # the frozen encoder stays in eval mode


# ------------------------------------------------------------------------------------------------------ L2P
def l2p_with_keys(**overrides):
    s = build_strategy("l2p", micro("vit"), INFO, {"pool_size": 4, "top_k": 2, "length": 2, **overrides})
    with torch.no_grad():
        s.keys.copy_(torch.zeros(4, 32))
        s.keys[0, 0], s.keys[1, 1], s.keys[2, 0], s.keys[2, 1], s.keys[3, 2] = 1.0, 1.0, 1.0, 0.2, -1.0
    return s


def test_l2p_picks_top_n_keys_by_cosine():
    s = l2p_with_keys().eval()
    query = torch.zeros(2, 32)
    query[0, 0] = 1.0  # cos: key0 1, key2 0.98, key1 0, key3 0
    query[1, 1], query[1, 0] = 1.0, 0.9  # cos: key2 highest, then key1, then key0
    idx, sim = s.select(query)
    assert idx[0].tolist() == [0, 2] and idx[1].tolist() == [2, 1]
    expected = F.normalize(query, dim=-1) @ F.normalize(s.keys, dim=-1).t()
    torch.testing.assert_close(sim, expected.gather(1, idx))


def test_l2p_loss_has_the_stated_terms_and_masks_other_tasks():
    s = l2p_with_keys(pull_weight=0.3).train()
    x, y = pixels(4), torch.tensor([2, 3, 2, 3])
    query = s.frozen_inputs(x).detach()
    ctx = TaskContext(index=1, num_steps=3, train_classes=[2, 3], seen_classes=[0, 1, 2, 3], domain=None,
                      train_data=TensorData(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0)))
    torch.manual_seed(0)
    loss = s.training_loss(Batch(x=x, y=y, cached=query), ctx)

    cos = F.normalize(query, dim=-1) @ F.normalize(s.keys, dim=-1).t()
    top = cos.topk(2, dim=-1)
    tokens = s.backbone.embed(x)
    chosen = s.prompts[top.indices].flatten(1, 2)
    tokens = s.backbone.run_blocks(torch.cat([tokens[:, :1], chosen, tokens[:, 1:]], dim=1))
    logits = s.head(s.backbone.encoder.norm(tokens)[:, 1:5].mean(1))
    masked = logits.clone()
    masked[:, [0, 1, 4, 5]] = -1e4  # classes of other tasks, earlier ones included
    expected = F.cross_entropy(masked, y) - 0.3 * top.values.sum(1).mean()
    torch.testing.assert_close(loss, expected)
    assert torch.equal(mask_logits(logits, ctx.train_classes), masked)


def random_stream(images_per_step: int = 24) -> tuple[list[TrainStep], list[EvalSet]]:
    """Two class-incremental steps of random images (3 classes each): no scenario build needed."""
    gen = torch.Generator().manual_seed(0)

    def data(classes: list[int], n: int) -> TensorData:
        return TensorData(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                          torch.tensor(classes).repeat(n // len(classes)))

    steps = [TrainStep(data([0, 1, 2], images_per_step), [0, 1, 2]),
             TrainStep(data([3, 4, 5], images_per_step), [3, 4, 5])]
    return steps, [EvalSet("t0", data([0, 1, 2], 12)), EvalSet("t1", data([3, 4, 5], 12))]


def test_l2p_query_is_computed_once_per_image():
    steps, eval_sets = random_stream()
    s = build_strategy("l2p", micro("vit"), INFO, {"epochs": 2, "batch_size": 8, "pool_size": 4, "top_k": 2,
                                                   "length": 2})
    calls = {"query_images": 0, "uncached_queries": 0}
    inside = [False]
    frozen, bb_forward = s.frozen_inputs, s.backbone.forward

    def counted_frozen(x):
        calls["query_images"] += x.shape[0]
        inside[0] = True
        try:
            return frozen(x)
        finally:
            inside[0] = False

    def counted_backbone(x):
        calls["uncached_queries"] += not inside[0]
        return bb_forward(x)

    s.frozen_inputs, s.backbone.forward = counted_frozen, counted_backbone
    run_stream(s, steps, eval_sets, torch.device("cpu"), seed=0, show_progress=False)
    # every training image once (2 epochs, 3 batches each), every evaluation image once (evaluated twice)
    images = sum(len(st.data) for st in steps) + sum(len(e.data) for e in eval_sets)
    assert calls["query_images"] == images
    assert calls["uncached_queries"] == 0  # forward always reads the cached query


def test_l2p_presets_and_flags():
    cifar = build_strategy("l2p_cifar", micro("vit"), INFO, {}).cfg
    assert (cifar.pool_size, cifar.length, cifar.top_k, cifar.pull_weight) == (10, 10, 4, 1.0)
    base = build_strategy("l2p", micro("vit"), INFO, {}).cfg
    assert (base.pool_size, base.length, base.top_k, base.pull_weight) == (10, 5, 5, 0.1)
    assert STRATEGIES.get("l2p_batchvote").flags.batchwise_inference
    assert not STRATEGIES.get("l2p").flags.batchwise_inference
    assert STRATEGIES.get("l2p").flags.extra_forward_passes == 1


def test_l2p_voting_only_under_its_flagged_name():
    with pytest.raises(ValueError, match="l2p_batchvote"):
        build_strategy("l2p", micro("vit"), INFO, {"batchwise_voting": True})
    with pytest.raises(ValueError, match="contradicts"):
        build_strategy("l2p_batchvote", micro("vit"), INFO, {"batchwise_voting": False})


def test_l2p_batch_vote_gives_every_image_the_same_prompts():
    s = build_strategy("l2p_batchvote", micro("vit"), INFO, {"pool_size": 4, "top_k": 2}).eval()
    idx, _ = s.select(torch.randn(5, 32))
    assert (idx == idx[0]).all()


# ------------------------------------------------------------------------------------------------------ OFA
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_ofa_prefixes_reach_exactly_the_chosen_layers(flavour):
    s = build_strategy("ofa_prompt", micro(flavour), INFO, {"length": 5, "depth": 1}).eval()
    blocks = s.backbone.blocks
    assert isinstance(blocks[0].attn, PrefixAttention) and not isinstance(blocks[1].attn, PrefixAttention)
    keys: list[int] = []
    hooks = [b.attn.register_forward_pre_hook(lambda _m, args: keys.append(args[0].shape[1])) for b in blocks]
    s(pixels())
    tokens = 1 + 16
    assert keys == [tokens, tokens]  # queries: the prefix never adds tokens
    assert blocks[0].attn.last_key_length == tokens + 5
    for h in hooks:
        h.remove()
    # every block chosen: each key sequence grows by the prefix length
    s = build_strategy("ofa_prompt", micro(flavour), INFO, {"length": 3}).eval()
    s(pixels())
    assert [b.attn.last_key_length for b in s.backbone.blocks] == [tokens + 3] * 2
    assert all(b.attn.prefix is None for b in s.backbone.blocks)  # cleared after each forward


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_ofa_prefix_of_a_listed_layer_changes_only_that_layer(flavour):
    plain = micro(flavour).eval()
    s = build_strategy("ofa_prompt", copy.deepcopy(plain), INFO, {"length": 4, "layers": [1]}).eval()
    assert not isinstance(s.backbone.blocks[0].attn, PrefixAttention)
    assert isinstance(s.backbone.blocks[1].attn, PrefixAttention)
    x = pixels()
    outputs: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _a, out: outputs.append(out)) for b in s.backbone.blocks]
    with torch.no_grad():
        s(x)
        ref_0 = plain.blocks[0](plain.embed(x))
        ref_1 = plain.blocks[1](ref_0)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(outputs[0], ref_0, rtol=0, atol=0)  # block 0 never sees a prefix
    assert not torch.allclose(outputs[1], ref_1, atol=1e-4)  # block 1's prefix changes its output
    assert s.layers[0].last_key_length == 17 + 4
    assert count_trainable(s) == 4 * 1 * 2 * plain.embed_dim + (plain.num_features + 1) * INFO.num_classes


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_ofa_with_empty_prefix_equals_the_frozen_model(flavour):
    plain = micro(flavour).eval()
    s = build_strategy("ofa_prompt", copy.deepcopy(plain), INFO, {"length": 0}).eval()
    x = pixels()
    with torch.no_grad():
        torch.testing.assert_close(s(x), s.head(plain(x)), rtol=1e-5, atol=1e-5)
    assert [b.attn.last_key_length for b in s.backbone.blocks] == [17, 17]


def test_prefix_attention_without_prefix_equals_timm_attention():
    attn = micro("vit").blocks[0].attn
    x = torch.randn(2, 17, 32)
    torch.testing.assert_close(PrefixAttention(attn)(x), attn(x), rtol=1e-5, atol=1e-6)


def test_prefix_attention_without_prefix_equals_multihead_attention():
    attn = micro("clip").blocks[0].attn
    assert isinstance(attn, nn.MultiheadAttention)
    x = torch.randn(2, 17, 32)
    expected = attn(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(PrefixAttention(attn)(x, x, x, need_weights=False)[0], expected,
                               rtol=1e-5, atol=1e-6)
    mha_prefixed = PrefixAttention(attn)
    mha_prefixed.prefix = (torch.randn(1, 2, 4, 16), torch.randn(1, 2, 4, 16))
    assert mha_prefixed(x, x, x)[0].shape == x.shape and mha_prefixed.last_key_length == 21


def test_prefix_attention_matches_explicit_prefixed_attention():
    """A prefix of the block's own projected keys/values of extra tokens equals attending over those tokens."""
    attn = micro("vit").blocks[0].attn
    x, extra = torch.randn(1, 17, 32), torch.randn(1, 4, 32)
    kv = attn.qkv(extra).reshape(1, 4, 3, 2, 16).permute(2, 0, 3, 1, 4)
    wrapped = PrefixAttention(attn)
    wrapped.prefix = (kv[1], kv[2])
    full = attn(torch.cat([extra, x], dim=1))[:, 4:]  # queries of x see keys of [extra, x]
    torch.testing.assert_close(wrapped(x), full, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_trainable_counts_by_formula(flavour):
    bb = micro(flavour)
    d, f, c, depth = bb.embed_dim, bb.num_features, INFO.num_classes, bb.num_blocks
    head = (f + 1) * c
    count = lambda name, cfg=None: count_trainable(build_strategy(name, micro(flavour), INFO, cfg or {}))  # noqa
    assert count("vpt_shallow", {"length": 7}) == 7 * d + head
    assert count("vpt_deep", {"length": 7}) == 7 * d * depth + head
    assert count("l2p", {"pool_size": 6, "length": 3}) == 6 * 3 * d + 6 * f + (d + 1) * c
    assert count("ofa_prompt", {"length": 5, "depth": 1}) == 5 * 1 * 2 * d + head
    mlp = (d * 8 + 8) + (8 * depth * 2 * d + depth * 2 * d)
    assert count("ofa_prompt", {"length": 5, "reparam": True, "reparam_hidden": 8}) == 5 * d + mlp + head


@pytest.mark.parametrize("name", ["vpt_shallow", "vpt_deep", "l2p", "ofa_prompt"])
def test_training_leaves_the_backbone_bit_for_bit_unchanged(name):
    s = build_strategy(name, micro("vit"), INFO, {"lr": 0.1, "optimizer": "sgd"})
    before = copy.deepcopy(s.backbone.state_dict())
    params = freeze_all_but_trainable(s)
    opt = torch.optim.SGD(params, lr=0.1)
    start = [p.detach().clone() for p in params]
    s.train()
    x, y = pixels(4), torch.tensor([0, 1, 2, 3])
    ctx = TaskContext(0, 1, [0, 1, 2, 3], [0, 1, 2, 3], None, TensorData(torch.zeros(0), torch.zeros(0)))
    for _ in range(2):
        loss = s.training_loss(Batch(x=x, y=y, cached=s.frozen_inputs(x)), ctx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = s.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not torch.equal(a, p) for a, p in zip(start, params))


# ----------------------------------------------------------------------------------------------------- suites
def test_paper_suite_uses_vit_b16_in21k_and_the_papers_settings():
    cells, _ = expand(load_suite("paper_vit_b16"))
    assert {c.backbone for c in cells} == {"vit_base_patch16_224.augreg_in21k"}
    by_label = {c.label or c.strategy: c for c in cells}
    assert {"vpt_shallow", "vpt_deep", "l2p", "l2p_cifar", "l2p_cifar_batchvote", "ofa_prompt"} <= set(by_label)
    for cell in cells:  # every config builds (a wrong field or value fails here, not after a download)
        cls = STRATEGIES.get(cell.strategy)
        cls.config_cls.from_dict(cell.strategy_config)
    cifar = STRATEGIES.get("l2p_cifar").config_cls.from_dict(by_label["l2p_cifar"].strategy_config)
    assert (cifar.pool_size, cifar.length, cifar.top_k, cifar.pull_weight) == (10, 10, 4, 1.0)
    # the suite runs the preset as defined: its defaults are the official config, nothing overridden
    assert by_label["l2p_cifar"].strategy_config == {}
    assert cifar == STRATEGIES.get("l2p_cifar").config_cls()
    for label in ("l2p_cifar", "l2p_cifar_batchvote", "l2p", "dualprompt_cifar", "dualprompt_imr",
                  "coda_prompt_cifar", "coda_prompt_imr"):  # the official input pipeline in every prompt-pool cell
        cell = by_label[label]
        cfg = STRATEGIES.get(cell.strategy).config_cls.from_dict(cell.strategy_config)
        assert (cfg.normalize, cfg.augment) == ("unit", "rrc_flip"), label


def test_ofa_ablation_covers_length_x_depth_x_reparam_with_distinct_labels():
    cells, _ = expand(load_suite("ofa_ablation"))
    ofa = [c for c in cells if c.strategy == "ofa_prompt"]
    factors = {(c.strategy_config["length"], c.strategy_config["depth"], c.strategy_config["reparam"]) for c in ofa}
    lengths, depths = {f[0] for f in factors}, {f[1] for f in factors}
    assert len(factors) == len(lengths) * len(depths) * 2 and len(lengths) > 1 and len(depths) > 1
    labels = {(c.label, c.scenario, c.seed) for c in ofa}
    assert len(labels) == len(ofa)  # one leaderboard row per variant and scenario, a cell per seed
    assert {c.seed for c in ofa} == {0, 1, 2}  # the ablation's verdicts are paired over 3 seeds
