"""VPT (shallow and deep) against numbers produced by the official code (tests/golden/vpt_*.json say how;
regenerate with scripts/golden/vpt.py): the official ViT's weights in timm's, its prompts and head in ours, then
logits, loss and gradients compared."""
from __future__ import annotations


import pytest
import timm
import torch
import torch.nn.functional as F

from bench.core.data import ScenarioInfo
from bench.core.strategy import build_strategy
from bench.models.backbones import VisionBackbone
from golden_fixtures import TOL, load


@pytest.mark.parametrize("name", ["vpt_shallow", "vpt_deep"])
def test_vpt_matches_the_official_code(name):
    tensors, meta = load(name)
    s = meta["setting"]
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=s["image"],
                              patch_size=s["patch"], embed_dim=s["embed_dim"], depth=s["depth"],
                              num_heads=s["heads"], mlp_ratio=2.0)
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vit.")})
    backbone = VisionBackbone(model.eval(), "timm", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), s["image"], "golden")
    info = ScenarioInfo("class_incremental", s["classes"], list("abcd"))
    strategy = build_strategy(name, backbone, info, {"length": s["length"], "prompt_dropout": s["dropout"]})
    with torch.no_grad():
        strategy.prompts.copy_(tensors["prompts"])
        strategy.head.weight.copy_(tensors["head.weight"])
        strategy.head.bias.copy_(tensors["head.bias"])
    strategy.train()
    x, y = tensors["x"], tensors["y"].long()
    logits = strategy(x)
    torch.testing.assert_close(logits, tensors["logits"], **TOL)
    loss = F.cross_entropy(logits, y)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    torch.testing.assert_close(strategy.prompts.grad, tensors["grad.prompts"], **TOL)
    torch.testing.assert_close(strategy.head.weight.grad, tensors["grad.head.weight"], **TOL)
    torch.testing.assert_close(strategy.head.bias.grad, tensors["grad.head.bias"], **TOL)
