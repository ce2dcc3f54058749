"""KgCoOp: the knowledge-guided penalty is 1 - mean cos(learned, hand-written) text features, weighted by lambda."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy, mask_logits
from bench.models.backbones import create_backbone
from bench.models.text import prompt_name

INFO = ScenarioInfo("base_to_new", 4, ["the digit 0", "the digit 1", "the digit 2", "the digit 3"])


def build(**config):
    torch.manual_seed(0)
    return build_strategy("kgcoop", create_backbone("clip_test_micro"), INFO, config)


def ctx() -> TaskContext:
    empty = TensorData(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    return TaskContext(index=0, num_steps=1, train_classes=[0, 1], seen_classes=[0, 1], domain=None,
                       train_data=empty)


def test_penalty_is_zero_when_the_context_spells_the_handwritten_prompt():
    strategy = build()  # context "a photo of a" + "{name}." is exactly the template "a photo of a {}."
    with torch.no_grad():
        gap = strategy.knowledge_gap(strategy.encode_text_features(), [0, 1, 2, 3])
    assert abs(float(gap)) < 1e-5


def test_loss_is_cross_entropy_plus_lambda_times_the_knowledge_gap():
    strategy = build(kg_weight=8.0)
    with torch.no_grad():
        strategy.ctx.add_(0.5 * torch.randn(strategy.ctx.shape, generator=torch.Generator().manual_seed(1)))
    x = torch.rand(3, 3, 32, 32)
    batch = Batch(x=None, y=torch.tensor([0, 1, 1]), cached=strategy.frozen_inputs(x).detach())
    loss = strategy.training_loss(batch, ctx())
    with torch.no_grad():
        text = strategy.encode_text_features()
        prompts = [f"a photo of a {prompt_name(n)}." for n in INFO.class_names]
        hand = F.normalize(strategy.backbone.encode_text(prompts), dim=-1)
        logits = strategy.backbone.logit_scale * batch.cached @ text.t()
        ce = F.cross_entropy(mask_logits(logits, [0, 1]), batch.y)
        gap = 1 - (text[:2] * hand[:2]).sum(-1).mean()  # base classes only: the ones trained on
    assert float(gap) > 1e-3
    assert torch.allclose(loss.detach(), ce + 8.0 * gap, atol=1e-5)
    loss.backward()
    assert strategy.ctx.grad.abs().sum() > 0


def test_paper_suite_anchors_each_data_set_to_coops_own_template():
    from bench.run.suite import expand, load_suite
    from strategies.zeroshot_clip import COOP_TEMPLATES, TEMPLATE

    assert COOP_TEMPLATES["eurosat"] == "a centered satellite photo of {}."
    assert sum(t != TEMPLATE for t in COOP_TEMPLATES.values()) == 7  # of CoOp's 11 data sets
    cells, _ = expand(load_suite("paper_clip_b16"))
    for name in ("kgcoop", "zeroshot_clip"):
        by_scenario = {c.scenario: c.strategy_config.get("template") for c in cells if c.strategy == name}
        for dataset, template in COOP_TEMPLATES.items():
            assert by_scenario[f"coop_{dataset}_b2n"] == template, (name, dataset)


def test_the_anchor_is_the_configured_template():
    from strategies.zeroshot_clip import template_text_features

    torch.manual_seed(0)
    clip = create_backbone("clip_test_micro")
    satellite = build_strategy("kgcoop", clip, INFO, {"template": "a centered satellite photo of {}."})
    expected = template_text_features(clip, INFO.class_names, "a centered satellite photo of {}.")
    assert torch.allclose(satellite.handwritten, expected, atol=1e-6)
    assert not torch.allclose(expected, template_text_features(clip, INFO.class_names), atol=1e-3)
