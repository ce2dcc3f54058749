"""Recipes as the official code runs them: learning-rate schedules, L2P's training-time voting, VPT's per-image
prompt dropout, head initialisation, DAPL's prompt text and the paper suites' Dassl settings."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from bench.core.data import ScenarioInfo, TaskContext, TensorData, TrainStep
from bench.core.strategy import STRATEGIES, StrategyConfig, build_strategy
from bench.models.backbones import create_backbone
from bench.run.runner import CellConfig
from bench.run.suite import expand, load_suite
from bench.train import harness
from strategies._vit_prompting import init_head
from strategies.l2p import batch_vote

INFO = ScenarioInfo("class_incremental", 6, [f"c{i}" for i in range(6)])
NAMES = ["the digit 7", "the capital letter A", "the small letter b"]
DA_INFO = ScenarioInfo("domain_adaptation", 3, NAMES, domains=["clean", "handwritten"], source_domain="clean",
                       target_domain="handwritten")


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_backbone("vit_test_micro")


# ---------------------------------------------------------------------------------------------- schedules
def lrs_seen(schedule: str, warmup_epochs: int = 0, warmup_lr: float = 0.0) -> list[float]:
    """The learning rate of every optimiser step of a 3-epoch linear-probe run (4 steps an epoch)."""
    feats = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))

    class Probe(nn.Module):  # the smallest strategy-shaped thing the harness can train
        name = "probe"
        cfg = StrategyConfig(epochs=3, batch_size=8, lr=0.1, schedule=schedule, warmup_epochs=warmup_epochs,
                             warmup_lr=warmup_lr)
        needs_pixels = False

        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 2)

        def trains_on(self, ctx):
            return True

        def training_loss(self, batch, ctx):
            return nn.functional.cross_entropy(self.head(feats[:len(batch.y)]), batch.y)

    probe = Probe()
    seen: list[float] = []
    step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    data = TensorData(torch.zeros(32, 3, 4, 4, dtype=torch.uint8), torch.randint(0, 2, (32,)))
    ctx = TaskContext(0, 1, [0, 1], [0, 1], None, data)
    torch.optim.SGD.step = recording
    try:
        harness.train_step_data(probe, data, ctx, torch.device("cpu"), torch.Generator().manual_seed(0),
                                list(probe.parameters()), show=False)
    finally:
        torch.optim.SGD.step = step
    return seen


def test_constant_schedule_keeps_the_learning_rate_fixed():
    assert lrs_seen("constant") == [0.1] * 12


def test_cosine_schedule_decays_from_the_peak():
    seen = lrs_seen("cosine")
    assert seen[0] == pytest.approx(0.1) and all(a > b for a, b in zip(seen, seen[1:]))
    assert seen[6] == pytest.approx(0.05 * (1 + math.cos(math.pi * 6 / 12)))


def test_dassl_warmup_runs_one_epoch_at_a_constant_small_rate_then_the_schedule():
    seen = lrs_seen("cosine", warmup_epochs=1, warmup_lr=1e-5)
    assert seen[:4] == pytest.approx([1e-5] * 4)
    assert seen[4] == pytest.approx(0.1)  # then cosine from the peak over the remaining 8 steps
    linear = lrs_seen("constant", warmup_epochs=1)
    assert linear[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1]) and linear[4:] == [0.1] * 8


def test_schedule_is_checked_when_the_config_is_built_and_omitted_at_its_default():
    with pytest.raises(ValueError, match="schedule: 'linear' must be one of 'cosine', 'constant'"):
        StrategyConfig.from_dict({"schedule": "linear"})
    with pytest.raises(ValueError, match="warmup_lr"):
        StrategyConfig.from_dict({"warmup_lr": -1.0})
    with pytest.raises(ValueError, match="schedule 'linear'"):
        harness.warmup_cosine(10, 0, "linear")
    assert "schedule" not in StrategyConfig().to_dict() and "warmup_lr" not in StrategyConfig().to_dict()
    assert StrategyConfig(schedule="constant").to_dict()["schedule"] == "constant"
    # A cell that leaves the schedule at its default keeps its id from before the field existed.
    cell = CellConfig("ci5_glyphs", "naive", "vit_glyph_tiny", 0, {"epochs": 2})
    assert "schedule" not in cell.resolved()["strategy_config"]
    assert cell.cell_id() != CellConfig("ci5_glyphs", "naive", "vit_glyph_tiny", 0,
                                        {"epochs": 2, "schedule": "constant"}).cell_id()


# --------------------------------------------------------------------------------------------------- L2P
def l2p_cifar(vit):
    s = build_strategy("l2p_cifar", copy.deepcopy(vit), INFO, {"pool_size": 5, "top_k": 2, "length": 2})
    assert float(s.prompts.min()) >= 0.0 and float(s.prompts.max()) < 0.01  # the JAX init
    assert torch.equal(s.head.weight, torch.zeros_like(s.head.weight))
    with torch.no_grad():  # key i points along axis i: an image's cosines are read off its first 5 entries
        s.keys.copy_(torch.eye(5, 32))
    return s


def test_l2p_cifar_is_the_official_recipe():
    cfg = STRATEGIES.get("l2p_cifar").config_cls()
    assert (cfg.length, cfg.top_k, cfg.pull_weight, cfg.train_voting, cfg.schedule, cfg.optimizer) == \
        (10, 4, 1.0, True, "constant", "adam")
    old = STRATEGIES.get("l2p_cifar_perimage").config_cls()  # the earlier l2p_cifar, under an honest name
    assert (old.length, old.top_k, old.pull_weight, old.train_voting, old.schedule) == (10, 4, 1.0, False, "cosine")
    # every value from the one JAX config (configs/cifar100_l2p.py), its input pipeline and init included
    assert (cfg.pool_size, cfg.batch_size, cfg.epochs, cfg.grad_clip, cfg.lr) == (10, 16, 5, 1.0, 0.03 * 16 / 256)
    assert (cfg.head_init, cfg.prompt_init, cfg.normalize, cfg.augment) == ("zeros", "jax", "unit", "rrc_flip")
    assert not STRATEGIES.get("l2p_cifar").flags.batchwise_inference  # voting only in training: no test flag


def test_l2p_cifar_selection_in_training_is_batch_wise_voting(vit):
    s = l2p_cifar(vit)
    query = torch.zeros(4, 32)
    # per image top-2: {0, 1}, {1, 2}, {1, 3}, {3, 4} -> votes: prompt 1 three times, prompt 3 twice
    for row, (a, b) in enumerate([(0, 1), (1, 2), (1, 3), (3, 4)]):
        query[row, a], query[row, b] = 1.0, 0.9
    s.train()
    idx, sim = s.select(query)
    assert idx.tolist() == [[1, 3]] * 4
    cos = torch.nn.functional.normalize(query, dim=-1) @ torch.nn.functional.normalize(s.keys, dim=-1).t()
    torch.testing.assert_close(sim, cos[:, [1, 3]])  # the pull term reads the voted keys, as the official code
    s.eval()  # at test time every image keeps its own top 2 (the unflagged preset)
    assert s.select(query)[0].tolist() == [[0, 1], [1, 2], [1, 3], [3, 4]]
    assert torch.equal(batch_vote(torch.tensor([[0, 1], [1, 2], [1, 3], [3, 4]]), 5, 2), torch.tensor([[1, 3]] * 4))


def test_l2p_cifar_trains_at_a_constant_rate_with_the_jax_zero_head(vit):
    s = l2p_cifar(vit)
    assert s.head.bias.abs().max() == 0 and s.head.weight.abs().max() == 0  # the JAX config's head
    port = build_strategy("l2p", copy.deepcopy(vit), INFO, {"head_init": "trunc_normal"})
    # timm's trunc_normal_(std=.02), as the port: cut at +-2 absolute, so in effect N(0, 0.02)
    assert port.head.bias.abs().max() == 0 and 0.012 < port.head.weight.std().item() < 0.028
    seen = []
    step = torch.optim.Adam.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    gen = torch.Generator().manual_seed(0)
    data = TensorData(torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=gen),
                      torch.tensor([0, 1, 2] * 5 + [0]))
    torch.optim.Adam.step = recording
    try:
        harness.run_stream(s, [TrainStep(data, [0, 1, 2])], [], torch.device("cpu"), 0, show_progress=False)
    finally:
        torch.optim.Adam.step = step
    assert len(seen) == s.cfg.epochs * 1 and set(seen) == {s.cfg.lr}


# --------------------------------------------------------------------------------------------------- VPT
def test_vpt_dropout_masks_differ_between_images_of_a_batch(vit):
    s = build_strategy("vpt_deep", copy.deepcopy(vit), INFO, {"prompt_dropout": 0.5, "length": 8}).train()
    seen = []
    handle = s.backbone.blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    torch.manual_seed(0)
    s(torch.rand(1, 3, 32, 32).expand(4, -1, -1, -1))  # four identical images
    handle.remove()
    prompts = seen[0][:, 1:9]  # the prompt slots after the class token
    dropped = prompts == 0
    assert dropped.any() and not all(torch.equal(dropped[0], dropped[i]) for i in range(1, 4))
    s.eval()  # no dropout at test time: identical images get identical prompts
    seen.clear()
    handle = s.backbone.blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    s(torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1))
    handle.remove()
    assert torch.equal(seen[0][0], seen[0][1])


def test_vpt_head_is_kaiming_normal_fan_out_with_zero_bias(vit):
    s = build_strategy("vpt_shallow", copy.deepcopy(vit), INFO, {})
    assert s.head.bias.abs().max() == 0
    head = nn.Linear(256, 4096)  # large enough for the spread to be read off reliably
    torch.manual_seed(0)
    init_head(head, "kaiming_fan_out")
    assert head.weight.std().item() == pytest.approx((2.0 / 4096) ** 0.5, rel=0.02)  # fan_out = out_features
    with pytest.raises(ValueError, match="head_init 'xavier'"):
        init_head(nn.Linear(2, 2), "xavier")


# -------------------------------------------------------------------------------------------------- DAPL
def test_dapl_official_prompt_text_names_the_domain():
    clip = create_backbone("clip_test_micro")
    s = build_strategy("dapl", clip, DA_INFO, {"n_ctx": 2, "n_dmx": 2, "domain_names_in_prompt": True})
    assert s.prompt_texts[0] == "digit 7 , a clean image." and s.prompt_texts[3].endswith("a handwritten image.")
    domain_token = clip.tokenizer.encode("handwritten")
    ids = s.layout.ids[3].tolist()
    assert any(ids[i:i + len(domain_token)] == domain_token for i in range(len(ids)))  # the encoder reads it
    plain = build_strategy("dapl", clip, DA_INFO, {"n_ctx": 2, "n_dmx": 2})
    assert not any("image" in t for t in plain.prompt_texts)


def test_paper_suites_use_the_official_recipes():
    cells, _ = expand(load_suite("paper_clip_b16"))
    for cell in cells:
        if cell.strategy in ("coop", "cocoop", "dapl"):
            cfg = cell.strategy_config
            assert (cfg["weight_decay"], cfg["warmup_epochs"], cfg["warmup_lr"]) == (0.0005, 1, 1e-5), cell.label
        if cell.strategy == "dapl":
            assert cell.strategy_config["domain_names_in_prompt"] is True
    vit_cells = {c.label or c.strategy: c for c in expand(load_suite("paper_vit_b16"))[0]}
    vote = STRATEGIES.get("l2p_batchvote").config_cls.from_dict(vit_cells["l2p_cifar_batchvote"].strategy_config)
    assert (vote.train_voting, vote.schedule, vote.batchwise_voting) == (True, "constant", True)
    assert {"l2p_cifar", "l2p_cifar_perimage"} <= set(vit_cells)


def test_l2p_prompt_pos_cls_adds_the_class_tokens_position_embedding_to_every_prompt_slot(vit):
    seen = []
    plain = build_strategy("l2p", copy.deepcopy(vit), INFO, {"pool_size": 3, "top_k": 1, "length": 2}).eval()
    port = build_strategy("l2p", copy.deepcopy(vit), INFO,
                          {"pool_size": 3, "top_k": 1, "length": 2, "prompt_pos": "cls"}).eval()
    with torch.no_grad():
        port.prompts.copy_(plain.prompts)
        port.keys.copy_(plain.keys)
    for s in (plain, port):
        s.backbone.blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0][:, 1:3].clone()))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        plain(x)
        port(x)
    cls_pos = vit.encoder.pos_embed[0, 0]
    plain_prompted, port_prompted = seen[1], seen[3]  # each forward runs the query pass first
    assert torch.allclose(port_prompted - plain_prompted, cls_pos.expand_as(plain_prompted), atol=1e-6)
    assert float(cls_pos.abs().max()) > 1e-3
    assert STRATEGIES.get("l2p").config_cls().prompt_pos == "none"  # the JAX code's choice stays the default


def test_a_preset_switched_off_keeps_the_off_value_in_its_config():
    """An omitted field is filled back with the class's default by from_dict: a preset whose default is on must
    write the off value out, or a stored record resolves to the other pipeline (l2p_cifar without augmentation
    came back as rrc_flip)."""
    import strategies  # noqa: F401
    from bench.core.strategy import STRATEGIES

    cls = STRATEGIES.get("l2p_cifar").config_cls
    off = cls.from_dict({"augment": "none", "schedule": "cosine"})
    assert off.to_dict()["augment"] == "none" and off.to_dict()["schedule"] == "cosine"
    assert cls.from_dict(off.to_dict()) == off
    assert "augment" not in STRATEGIES.get("l2p").config_cls().to_dict()  # default off: still omitted (old ids)
