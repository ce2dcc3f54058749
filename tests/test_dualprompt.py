"""DualPrompt: G-prompt and E-prompt prefixes at their layers, top-1 key matching, past E-prompts frozen."""
from __future__ import annotations

import torch

from bench.contract.tiny import tiny_scenario
from bench.core.data import ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.train.harness import run_stream
from strategies._vit_prompting import scale_layers

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])
SMALL = {"g_length": 2, "e_length": 3, "pool_size": 4}


def build(info: ScenarioInfo = INFO, **config):
    torch.manual_seed(0)
    return build_strategy("dualprompt", create_backbone("vit_test_micro"), info, {**SMALL, **config})


def ctx(index: int) -> TaskContext:
    return TaskContext(index=index, num_steps=4, train_classes=[index], seen_classes=list(range(index + 1)),
                       domain=None, train_data=TensorData(torch.zeros(0, 3, 32, 32, dtype=torch.uint8),
                                                          torch.zeros(0, dtype=torch.long)))


def test_layers_are_given_for_vit_b_and_scaled_to_the_depth():
    assert scale_layers((0, 1), 12) == [0, 1] and scale_layers((2, 3, 4), 12) == [2, 3, 4]
    assert scale_layers((0, 1), 6) == [0] and scale_layers((2, 3, 4), 6) == [1, 2]


def test_g_prompt_and_e_prompt_prefix_their_own_layers():
    strategy = build(g_layers=(0,), e_layers=(6,)).eval()  # depth 2: G at block 0, E at block 1
    x = torch.rand(2, 3, 32, 32)
    strategy(x)
    tokens = 1 + 16  # class token + 4x4 patches
    blocks = strategy.backbone.blocks
    assert blocks[0].attn.last_key_length == tokens + 2  # + Lg
    assert blocks[1].attn.last_key_length == tokens + 3  # + Le
    assert blocks[0].attn.prefix is None and blocks[1].attn.prefix is None  # cleared after the pass


def test_test_time_selection_is_top1_cosine_among_trained_tasks():
    strategy = build()
    d = strategy.keys.shape[1]
    with torch.no_grad():
        strategy.keys.copy_(torch.eye(4, d))
    strategy.before_task(ctx(2))  # tasks 0-2 trained so far
    strategy.eval()
    query = torch.zeros(3, d)
    query[0, 1] = 1.0  # nearest key: task 1
    query[1, 0], query[1, 2] = 0.5, 2.0  # task 2
    query[2, 3], query[2, 0] = 5.0, 1.0  # key 3 is nearest, but task 3 is not trained yet: task 0
    assert strategy.select(query).tolist() == [1, 2, 0]
    strategy.train()
    assert strategy.select(query).tolist() == [2, 2, 2]  # training uses the current task's E-prompt


def test_past_e_prompts_and_keys_stay_frozen_while_the_shared_parts_train():
    scenario = tiny_scenario("class_incremental")
    strategy = build(scenario.info(), epochs=2, batch_size=8, lr=0.01)
    snapshots = []
    original = strategy.after_task

    def record(context: TaskContext) -> None:
        original(context)
        snapshots.append({n: p.detach().clone() for n, p in strategy.named_parameters() if "backbone" not in n})

    strategy.after_task = record
    init = strategy.e_prompts.detach().clone()
    run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), seed=0, show_progress=False)
    first, second = snapshots
    assert not torch.equal(init[0], first["e_prompts"][0])  # task 0 trained its E-prompt
    assert torch.equal(first["e_prompts"][0], second["e_prompts"][0])  # ... and task 1 left it alone
    assert torch.equal(first["keys"][0], second["keys"][0])
    assert not torch.equal(first["e_prompts"][1], second["e_prompts"][1])  # task 1 trained its own
    assert not torch.equal(first["g_prompt"], second["g_prompt"])  # the G-prompt is shared and keeps training
    assert torch.equal(second["e_prompts"][2:], init[2:])  # prompts of tasks never trained are untouched


def test_defaults_are_the_official_cifar_config():
    cfg = build().cfg
    official = {"g_length": 5, "e_length": 5, "g_layers": (0, 1), "e_layers": (2, 3, 4), "pull_weight": 1.0,
                "optimizer": "adam", "lr": 0.03 * 24 / 256, "schedule": "constant", "grad_clip": 1.0, "epochs": 5,
                "batch_size": 24, "shared_prompt_pool": True, "head_init": "trunc_normal"}
    defaults = build_strategy("dualprompt", create_backbone("vit_test_micro"), INFO, {}).cfg
    assert {k: getattr(defaults, k) for k in official} == official
    head = build_strategy("dualprompt", create_backbone("vit_test_micro"), ScenarioInfo(
        "class_incremental", 200, [str(i) for i in range(200)]), {}).head
    assert torch.equal(head.bias, torch.zeros_like(head.bias))
    assert 0.018 < float(head.weight.std()) < 0.022  # truncated normal, std 0.02 (nn.Linear's default: ~0.1 here)
    assert cfg.normalize == "backbone" and cfg.augment == "none"  # glyphs: no flips, their own normalisation


def test_presets_use_the_official_input_pipeline_and_imagenet_r_values():
    torch.manual_seed(0)
    cifar = build_strategy("dualprompt_cifar", create_backbone("vit_test_micro"), INFO, {})
    assert cifar.cfg.augment == "rrc_flip" and cifar.cfg.normalize == "unit"
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(cifar.backbone.preprocess(x), x)  # raw [0, 1] pixels reach the patch embedding
    imr = build_strategy("dualprompt_imr", create_backbone("vit_test_micro"), INFO, {})
    assert (imr.cfg.e_length, imr.cfg.epochs, imr.cfg.lr) == (20, 50, 0.005 * 24 / 256)
    assert imr.cfg.augment == "rrc_flip" and not imr.flags.batchwise_inference


def test_each_task_starts_from_a_copy_of_the_previous_tasks_e_prompt():
    strategy = build()
    with torch.no_grad():
        strategy.e_prompts[0].add_(3.0)  # task 0 trained
    keys = strategy.keys.detach().clone()
    strategy.before_task(ctx(1))
    assert torch.equal(strategy.e_prompts[1], strategy.e_prompts[0])
    assert torch.equal(strategy.keys, keys)  # keys are not shared (official shared_prompt_key=False)
    plain = build(shared_prompt_pool=False)
    before = plain.e_prompts[1].detach().clone()
    plain.before_task(ctx(1))
    assert torch.equal(plain.e_prompts[1], before)


def test_batchvote_preset_gives_the_batchs_most_voted_e_prompt_to_every_image():
    import pytest

    torch.manual_seed(0)
    strategy = build_strategy("dualprompt_batchvote", create_backbone("vit_test_micro"), INFO, {"pool_size": 4})
    assert strategy.flags.batchwise_inference
    d = strategy.keys.shape[1]
    with torch.no_grad():
        strategy.keys.copy_(torch.eye(4, d))
    strategy.before_task(ctx(2))
    strategy.eval()
    query = torch.zeros(3, d)
    query[0, 1], query[1, 1], query[2, 2] = 1.0, 1.0, 1.0  # per image: 1, 1, 2
    assert strategy.select(query).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="dualprompt_batchvote"):
        build(batchwise_voting=True)
