"""The GPU's bf16 autocast path, run on the CPU (torch's CPU autocast, `PROMPTSHIFT_CPU_AUTOCAST=bf16`): every
strategy family trains and evaluates under it with finite losses, its trainable weights move, the frozen
backbone stays bit for bit, and the backbone really ran in bf16."""
from __future__ import annotations

import math

import pytest
import torch

from bench.core.device import CPU_AUTOCAST_ENV
from bench.core.seeding import seed_everything
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.train.guards import check_frozen, frozen_state
from bench.train.harness import run_stream

BACKBONES = {"vit": "vit_test_micro", "clip": "clip_test_micro", "coca": "coca_test_micro"}
FAMILIES = [("linear_probe", "vit", "class_incremental"), ("lora", "vit", "class_incremental"),
            ("adapter", "vit", "class_incremental"), ("vpt_deep", "vit", "class_incremental"),
            ("l2p", "vit", "class_incremental"), ("dualprompt", "vit", "class_incremental"),
            ("coda_prompt", "vit", "class_incremental"), ("ofa_prompt", "vit", "class_incremental"),
            ("ewc", "vit", "class_incremental"), ("replay", "vit", "class_incremental"),
            ("ranpac", "vit", "class_incremental"), ("aper", "vit", "class_incremental"),
            ("coop", "clip", "base_to_new"), ("cocoop", "clip", "base_to_new"), ("maple", "clip", "base_to_new"),
            ("promptsrc", "clip", "base_to_new"), ("prompt_tuning", "clip", "base_to_new"),
            ("dapl", "clip", "domain_adaptation"), ("ofa_prompt_coca", "coca", "class_incremental")]
SMALL = {"dapl": {"n_ctx": 4, "n_dmx": 4}}


@pytest.mark.parametrize("name, family, kind", FAMILIES)
def test_bf16_autocast_path_trains_every_family_on_cpu(tiny, monkeypatch, name, family, kind):
    monkeypatch.setenv(CPU_AUTOCAST_ENV, "bf16")
    scenario = tiny(kind)
    seed_everything(0)
    strategy = build_strategy(name, create_backbone(BACKBONES[family]), scenario.info(),
                              {"epochs": 1, **SMALL.get(name, {})})
    dtypes: list[torch.dtype] = []
    for module in strategy.backbone.modules():  # a Linear under autocast gives bf16
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    before = {n: p.detach().clone() for n, p in strategy.named_parameters()}
    frozen = frozen_state(strategy)
    result = run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, show_progress=False)
    check_frozen(strategy, frozen)
    assert torch.bfloat16 in dtypes, (name, set(dtypes))  # the backbone's matmuls ran under bf16 autocast
    assert all(v is None or 0.0 <= v <= 1.0 for row in result.acc_matrix for v in row)
    trained = [n for n, p in strategy.named_parameters() if p.requires_grad]
    if strategy.training_free or not trained:
        return
    assert any(not math.isnan(loss) and math.isfinite(loss) for loss in result.losses), result.losses
    assert any(not torch.equal(before[n], p) for n, p in strategy.named_parameters() if n in before and
               p.requires_grad), f"{name}: no trainable weight moved under bf16 autocast"
    assert all(p.dtype == torch.float32 for n, p in strategy.named_parameters())  # master weights stay fp32
