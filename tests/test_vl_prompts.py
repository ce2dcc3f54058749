"""Mechanism tests of the CLIP prompt learners (CoOp, CoCoOp, DAPL) and zero-shot CLIP, on the random micro CLIP."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import TINY_SCENARIOS
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import STRATEGIES, build_strategy, count_trainable, freeze_all_but_trainable, mask_logits
from bench.models.backbones import create_backbone
from bench.models.text import prompt_name
from bench.run.runner import CellConfig, run_cell
from bench.run.suite import expand, load_suite
from bench.train.harness import evaluate, fill_cache, run_stream
from strategies.coop import init_context
from strategies.dapl import pseudo_labels
from strategies.zeroshot_clip import template_text_features

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["the digit 7", "the capital letter A", "the small letter b"]
INFO = ScenarioInfo("base_to_new", 3, NAMES)
DA_INFO = ScenarioInfo("domain_adaptation", 3, NAMES, domains=["clean", "texture"], source_domain="clean",
                       target_domain="texture")
VL = ("zeroshot_clip", "coop", "cocoop", "dapl")
SMALL_DAPL = {"n_ctx": 4, "n_dmx": 4}  # the paper's 16 + 16 do not fit the micro CLIP's 32 text positions


@pytest.fixture(scope="module")
def clip():
    return create_backbone("clip_test_micro")


def fresh(clip):
    return copy.deepcopy(clip)


def features(n: int, dim: int = 32, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def ctx_of(labels: list[int], domain: str | None = None) -> TaskContext:
    return TaskContext(0, 1, labels, labels, domain, TensorData(torch.zeros(0), torch.zeros(0)))


# --------------------------------------------------------------------------------------------- CoOp layout
@pytest.mark.parametrize("class_specific", [False, True])
@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_class_token_position_gives_the_intended_token_layout(clip, position, class_specific):
    m = 4
    s = build_strategy("coop", clip, INFO, {"n_ctx": m, "class_token_position": position,
                                            "class_specific": class_specific})
    with torch.no_grad():
        s.ctx.copy_(torch.randn_like(s.ctx))
    tok, embed = clip.tokenizer, clip.text.embed_ids
    prompts = s.layout.splice(s.ctx)
    length = s.layout.ids.shape[1]  # up to the longest prompt's EOS: later (padding) tokens cannot matter
    assert prompts.shape == (3, length, clip.text.width)
    for i, name in enumerate(NAMES):
        name_ids, dot = tok.encode(prompt_name(name)), tok.encode(".")
        # The tokenizer reads "X X X X name." as placeholders + name + '.', the assumption the layout rests on.
        assert s.layout.ids[i, 1 + m:2 + m + len(name_ids)].tolist() == name_ids + dot
        ctx = s.ctx[i if class_specific else 0]
        word = lambda ids: embed(torch.tensor(ids, dtype=torch.long))  # noqa: E731
        pieces = {"end": [ctx, word(name_ids)], "front": [word(name_ids), ctx],
                  "middle": [ctx[: m // 2], word(name_ids), ctx[m // 2:]]}[position]
        used = 1 + m + len(name_ids) + 2
        expected = torch.cat([word([tok.sot_token_id]), *pieces, word(dot + [tok.eot_token_id]),
                              word([0] * (length - used))])
        assert torch.equal(prompts[i], expected), (position, name)
        assert int(s.layout.ids[i].argmax()) == used - 1  # the EOS the text encoder pools sits where it was
    if class_specific:
        assert s.params_per_new_task(2) == 2 * m * clip.text.width
    else:
        assert s.params_per_new_task(2) == 0


def test_ctx_init_reproduces_the_phrase_and_a_wrong_count_is_refused(clip):
    phrase_ids = clip.tokenizer.encode("a photo of a")
    words = clip.text.embed_ids(torch.tensor(phrase_ids)).detach()
    assert torch.equal(init_context(clip, 4, "a photo of a", 1)[0], words)
    s = build_strategy("coop", clip, INFO, {"n_ctx": 4, "ctx_init": "a photo of a", "class_specific": True})
    assert all(torch.equal(s.ctx[i], words) for i in range(3))
    # Spliced at the end, the prompt is exactly "a photo of a {name}." as the tokenizer would embed it.
    ids = clip.text.tokenize([f"a photo of a {prompt_name(n)}." for n in NAMES])
    assert torch.equal(s.layout.splice(s.ctx), clip.text.embed_ids(ids)[:, :s.layout.ids.shape[1]])
    # ... so its text features are zero-shot CLIP's, although the sequences stop at the last EOS.
    assert torch.allclose(s.text_features(), template_text_features(clip, NAMES), atol=1e-6)
    with pytest.raises(ValueError, match="has 4 tokens but n_ctx is 3"):
        build_strategy("coop", clip, INFO, {"n_ctx": 3, "ctx_init": "a photo of a"})
    with pytest.raises(ValueError, match="lower n_ctx"):
        build_strategy("coop", clip, INFO, {"n_ctx": 40})


# ----------------------------------------------------------------------------------------------- CoCoOp
def test_cocoop_prompts_and_text_features_differ_per_image(clip):
    s = build_strategy("cocoop", clip, INFO)
    d, w = clip.embed_dim, clip.text.width
    linears = [layer for layer in s.meta_net if isinstance(layer, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(d, d // 16), (d // 16, w)]
    assert isinstance(s.meta_net[1], nn.ReLU)
    # With d/16 = 2 hidden units, a fresh random meta-net can switch both ReLUs off for both images; a
    # well-conditioned init makes the test about the mechanism, not about that initial draw.
    with torch.no_grad():
        for lin in linears:
            nn.init.normal_(lin.weight)
            lin.bias.fill_(0.5)
    images = features(2)
    prompts = s.prompts(images)  # (B, C, L, w)
    m = s.cfg.n_ctx
    assert not torch.allclose(prompts[0, :, 1:1 + m], prompts[1, :, 1:1 + m])
    assert torch.equal(prompts[0, :, 0], prompts[1, :, 0]) and torch.equal(prompts[0, :, 1 + m:], prompts[1, :, 1 + m:])
    bias = s.meta_net(images)  # one bias per image, added to every context token
    assert torch.allclose(prompts[:, 0, 1:1 + m] - s.ctx, bias.unsqueeze(1).expand(-1, m, -1), atol=1e-6)
    text = s.layout.encode(clip.text, prompts)
    assert text.shape == (2, 3, clip.embed_dim) and not torch.allclose(text[0], text[1])
    # One (B*C)-batch through the text encoder gives what the official per-image loop gives.
    loop = torch.stack([clip.logit_scale * images[b] @ s.layout.encode(clip.text, prompts[b]).t() for b in range(2)])
    assert torch.allclose(s(None, images), loop, atol=1e-5)


def test_shared_prefix_encoding_equals_the_concatenated_prompts(clip, monkeypatch):
    """CoCoOp's prompts share their start per image: `encode_shared_prefix` computes it once per image and must give
    the text encoder's features (and gradients) of every concatenated (image, class) prompt."""
    s = build_strategy("cocoop", clip, INFO)
    rest, ids = s.layout.rest, s.layout.ids
    prefix = torch.randn(2, 1 + s.cfg.n_ctx, clip.text.width, generator=torch.Generator().manual_seed(3))
    prefix.requires_grad_(True)
    full = torch.cat([prefix.unsqueeze(1).expand(-1, len(ids), -1, -1),
                      rest.unsqueeze(0).expand(2, -1, -1, -1)], dim=2)
    expected = clip.text.encode_embeddings(full.reshape(-1, *full.shape[2:]), ids.repeat(2, 1)).view(2, len(ids), -1)
    shared = clip.text.encode_shared_prefix(prefix, rest, ids)
    assert clip.text._prefix_shareable()
    torch.testing.assert_close(shared, expected, rtol=1e-5, atol=1e-5)
    grad_shared, = torch.autograd.grad(shared.square().sum(), prefix, retain_graph=True)
    grad_expected, = torch.autograd.grad(expected.square().sum(), prefix)
    torch.testing.assert_close(grad_shared, grad_expected, rtol=1e-4, atol=1e-5 * float(grad_expected.abs().max()))
    monkeypatch.setattr(type(clip.text), "_prefix_shareable", lambda self: False)  # the concatenated fallback
    torch.testing.assert_close(clip.text.encode_shared_prefix(prefix, rest, ids), expected, rtol=1e-6, atol=1e-6)


def test_cocoop_training_on_the_label_space_equals_masked_cross_entropy(clip):
    s = build_strategy("cocoop", clip, INFO, {"max_prompts": 4})  # forces several text-encoder chunks
    images, y = features(3, seed=1), torch.tensor([2, 0, 2])
    loss = s.training_loss(Batch(None, y, cached=images), ctx_of([0, 2]))
    assert torch.allclose(loss, F.cross_entropy(mask_logits(s(None, images), [0, 2]), y), atol=1e-5)


# ------------------------------------------------------------------------------------------------- DAPL
def test_dapl_pseudo_label_mask_keeps_exactly_the_samples_at_or_above_tau():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.49, 0.31, 0.2], [0.05, 0.9, 0.05], [0.2, 0.2, 0.6], [0.4, 0.35, 0.25]])
    labels, keep = pseudo_labels(probs, tau=0.5)
    assert keep.tolist() == [True, False, True, True, False]
    assert labels.tolist() == [0, 0, 1, 2, 0]


def test_dapl_prompts_and_loss_terms(clip):
    s = build_strategy("dapl", clip, DA_INFO, SMALL_DAPL)
    text = s.text_features()
    assert text.shape == (2, 3, clip.embed_dim) and not torch.allclose(text[0], text[1])
    # Row d*C + c of the prompts: [SOS][agnostic ctx][domain d ctx][class c]...
    n_dom, n_cls = 2, 3
    ctx = torch.cat([s.ctx.expand(n_dom, n_cls, 4, -1), s.domain_ctx.unsqueeze(1).expand(-1, n_cls, -1, -1)], -2)
    spliced = s.layout.splice(ctx.flatten(0, 1))
    assert torch.equal(spliced[1 * n_cls + 2, 1:5], s.ctx[0]) and torch.equal(spliced[1 * n_cls + 2, 5:9],
                                                                               s.domain_ctx[1])
    source, y, target = features(4, seed=2), torch.tensor([0, 1, 2, 1]), features(5, seed=3)
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.49, 0.31, 0.2], [0.05, 0.9, 0.05], [0.2, 0.2, 0.6], [0.4, 0.35, 0.25]])
    s.zero_shot_probs = lambda image: probs  # hand-built pseudo-label distribution
    batch = Batch(None, y, cached=source, target_cached=target)
    logits_s, logits_t = s.domain_logits(source), s.domain_logits(target)
    source_term = F.cross_entropy(logits_s[:, 0], y)  # source prompts
    keep = torch.tensor([0, 2, 3])
    target_term = F.cross_entropy(logits_t[keep, 1], torch.tensor([0, 1, 2]))  # target prompts, kept samples only
    ctx = ctx_of([0, 1, 2], "clean")
    assert torch.allclose(s.training_loss(batch, ctx), source_term + target_term, atol=1e-5)
    s_u0 = build_strategy("dapl", clip, DA_INFO, {**SMALL_DAPL, "target_weight": 0.0})
    s_u0.load_state_dict(s.state_dict())
    assert torch.allclose(s_u0.training_loss(batch, ctx), source_term, atol=1e-6)
    # The paper's form: one softmax over every (domain, class) pair.
    joint = build_strategy("dapl", clip, DA_INFO, {**SMALL_DAPL, "joint_softmax": True})
    joint.load_state_dict(s.state_dict())
    joint.zero_shot_probs = s.zero_shot_probs
    expected = (F.cross_entropy(logits_s.flatten(1), y) +
                F.cross_entropy(logits_t[keep].flatten(1), torch.tensor([0, 1, 2]) + n_cls))
    assert torch.allclose(joint.training_loss(batch, ctx), expected, atol=1e-5)
    # Evaluation reads the target-domain prompts.
    assert torch.allclose(s(None, target), logits_t[:, 1], atol=1e-6)


def test_dapl_pseudo_labels_are_zero_shot_clip_at_temperature_t(clip):
    s = build_strategy("dapl", clip, DA_INFO, {**SMALL_DAPL, "temperature": 2.0})
    zs = build_strategy("zeroshot_clip", clip, DA_INFO)
    images = features(4, seed=4)
    assert torch.allclose(s.zero_shot_probs(images), F.softmax(zs(None, images) / 2.0, dim=-1), atol=1e-6)


# --------------------------------------------------------------------------------------------- zero-shot
def test_zero_shot_has_no_trainable_parameters_and_matches_a_hand_computation(clip, tiny):
    scenario = tiny("base_to_new")
    s = build_strategy("zeroshot_clip", clip, scenario.info())
    assert count_trainable(s) == 0 and list(s.trainable_parameters()) == []
    data = scenario.eval_sets[0].data.subset(torch.arange(10))
    with torch.no_grad():
        image = F.normalize(clip.encode_image(data.images.float() / 255), dim=-1)
        texts = [f"a photo of a {prompt_name(n)}." for n in scenario.class_names]
        assert not any("a the " in t for t in texts)
        text = F.normalize(clip.encode_text(texts), dim=-1)
    hand = float(((image @ text.t()).argmax(-1) == data.labels).float().mean())
    s.before_eval()
    assert evaluate(s, data, None, torch.device("cpu"), batch_size=3) == pytest.approx(hand)
    s.after_eval()


@pytest.mark.parametrize("name", ["zeroshot_clip", "coop", "dapl"])
def test_text_features_are_encoded_once_per_evaluation(clip, tiny, name):
    scenario = tiny("domain_adaptation")
    s = build_strategy(name, fresh(clip), scenario.info(), SMALL_DAPL if name == "dapl" else {})
    data = scenario.eval_sets[1].data.subset(torch.arange(12))
    fill_cache(s, data, torch.device("cpu"))
    calls = []
    original = s.backbone.text.encode_embeddings
    s.backbone.text.encode_embeddings = lambda embeds, ids: calls.append(len(embeds)) or original(embeds, ids)
    s.eval()
    s.before_eval()
    evaluate(s, data, None, torch.device("cpu"), batch_size=4)  # three batches
    s.after_eval()
    assert len(calls) == 1


# --------------------------------------------------------------------------------------------- contracts
@pytest.mark.parametrize("name", ["coop", "cocoop", "dapl"])
def test_training_moves_only_the_prompts(clip, name):
    info = DA_INFO if name == "dapl" else INFO
    s = build_strategy(name, fresh(clip), info, SMALL_DAPL if name == "dapl" else {})
    if name == "cocoop":  # 2 hidden ReLU units can start dead, and dead units get no gradient: see above
        with torch.no_grad():
            for lin in [m for m in s.meta_net if isinstance(m, nn.Linear)]:
                nn.init.normal_(lin.weight)
                lin.bias.fill_(0.5)
    before = copy.deepcopy(s.backbone.state_dict())
    params = freeze_all_but_trainable(s)
    start = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=1.0)
    batch = Batch(None, torch.tensor([0, 1, 2]), cached=features(3), target_cached=features(3, seed=5))
    for _ in range(2):
        loss = s.training_loss(batch, ctx_of([0, 1, 2], "clean"))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = s.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not torch.equal(a, p) for a, p in zip(start, params))


@pytest.mark.parametrize("name", VL)
def test_contract_attributes(name):
    cls = STRATEGIES.get(name)
    assert cls.backbone_families == ("clip",) and cls.needs_text and not cls.needs_pixels
    assert cls.family == "vision-language" and cls.paper and cls.flags.class_names
    assert "Trains:" in cls.__doc__ and "Freezes:" in cls.__doc__
    expected = {"dapl": {"domain_adaptation", "domain_incremental"}}.get(
        name, {"class_incremental", "domain_incremental", "base_to_new", "domain_adaptation"})
    assert set(cls.supported_scenarios) == expected
    assert cls.flags.unlabelled_target == (name == "dapl")


# ------------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("name", ["zeroshot_clip", "coop", "cocoop"])
def test_base_to_new_cells_report_base_new_and_harmonic_mean(tmp_path, name):
    cfg = CellConfig(scenario="b2n_glyphs", strategy=name, backbone="clip_test_micro", seed=0,
                     strategy_config={"epochs": 1}, scenario_overrides=TINY_SCENARIOS["base_to_new"][1])
    record = run_cell(cfg, tmp_path, device="cpu", show_progress=False)
    assert record["status"] == "ok", record["error"]
    m = record["metrics"]
    base, new = m["base_acc"], m["new_acc"]
    assert m["harmonic_mean"] == pytest.approx(0.0 if base + new == 0 else 2 * base * new / (base + new))
    assert record["results"]["eval_names"] == ["base", "new"]
    assert (record["strategy"]["trainable_params"] == 0) == (name == "zeroshot_clip")


@pytest.mark.parametrize("name, kind", [("dapl", "domain_adaptation"), ("linear_probe", "class_incremental")])
def test_dapl_and_the_clip_linear_probe_run_end_to_end(tmp_path, name, kind):
    scenario, overrides = TINY_SCENARIOS[kind]
    config = {"epochs": 1, **(SMALL_DAPL if name == "dapl" else {})}
    cfg = CellConfig(scenario=scenario, strategy=name, backbone="clip_test_micro", seed=0,
                     strategy_config=config, scenario_overrides=overrides)
    record = run_cell(cfg, tmp_path, device="cpu", show_progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["strategy"]["backbone_family"] == "clip"
    if name == "linear_probe":  # the runner hands a vision-only strategy the image tower: a head on CLIP features
        assert record["strategy"]["trainable_params"] == (32 + 1) * 8
    else:
        assert set(record["metrics"]) >= {"source_acc", "target_acc"}


def test_dapl_on_a_domain_stream_trains_each_domain_context_and_marginalises(clip, tiny):
    scenario = tiny("domain_incremental")
    s = build_strategy("dapl", fresh(clip), scenario.info(), {**SMALL_DAPL, "epochs": 1})
    start = s.domain_ctx.detach().clone()
    first = scenario.steps[:1]
    run_stream(s, first, scenario.eval_sets, torch.device("cpu"), 0, False)
    moved = (s.domain_ctx.detach() != start).flatten(1).any(-1)
    assert moved.tolist() == [True, False] and s.seen_domains == [0]  # only the first step's domain trained
    images = features(3)
    assert torch.allclose(s(None, images), s.domain_logits(images)[:, 0], atol=1e-5)  # one domain seen: its block
    s.seen_domains = [0, 1]
    assert torch.allclose(s(None, images), torch.logsumexp(s.domain_logits(images), dim=1), atol=1e-5)
    assert s.params_per_new_task(0) == 4 * clip.text.width


# ------------------------------------------------------------------------------------------ presets & refs
def test_paper_clip_suite_loads_and_expands():
    suite = load_suite("paper_clip_b16")
    assert suite.backbones == {"clip": "ViT-B-16.openai"}
    cells, _ = expand(suite)
    by_label = {c.label or c.strategy: c for c in cells}
    assert {"zeroshot_clip", "coop_m16_end", "coop_b2n_m4", "cocoop", "dapl"} <= set(by_label)
    coop = by_label["coop_m16_end"].strategy_config
    assert (coop["n_ctx"], coop["class_token_position"], coop["lr"], coop["batch_size"]) == (16, "end", 0.002, 32)
    b2n = by_label["coop_b2n_m4"].strategy_config
    assert (b2n["n_ctx"], b2n["ctx_init"]) == (4, "a photo of a")
    office_home = {s for s in suite.scenarios if s.startswith("office_home_")}
    assert {c.scenario for c in cells if c.strategy == "dapl"} == office_home and len(office_home) == 12
    assert all(c.backbone == "ViT-B-16.openai" for c in cells)
    for c in cells:
        c.resolved()  # every config field is a real field of its strategy


def test_reference_numbers_are_exactly_the_published_ones():
    refs = yaml.safe_load((ROOT / "bench" / "report" / "references.yaml").read_text())["references"]
    table = {(r.get("strategy"), r["protocol"], r["metric"]): r["value"] for r in refs
             if "ViT-B/16 (OpenAI)" in r["backbone"]}
    expected = {("zeroshot_clip", "base_acc"): 69.34, ("zeroshot_clip", "new_acc"): 74.22,
                ("zeroshot_clip", "harmonic_mean"): 71.70, ("coop", "base_acc"): 82.69, ("coop", "new_acc"): 63.22,
                ("coop", "harmonic_mean"): 71.66, ("cocoop", "base_acc"): 80.47, ("cocoop", "new_acc"): 71.69,
                ("cocoop", "harmonic_mean"): 75.83}
    assert {k: table[(k[0], "base_to_new", k[1])] for k in expected} == expected
    assert table[("zeroshot_clip", "domain_adaptation", "target_acc")] == 82.4
    assert table[("dapl", "domain_adaptation", "target_acc")] == 84.4
    assert all(r["paper"] for r in refs)
