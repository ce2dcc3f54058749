"""RanPAC against numbers produced by the official code (tests/golden/ranpac.json says how; regenerate with
scripts/golden/ranpac.py): the same ViT, random projection and two tasks, then G, Q, lambda, W_o and logits."""
from __future__ import annotations


import timm
import torch

from bench.core.data import ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from bench.models.backbones import VisionBackbone
from golden_fixtures import TOL, load

OFFICIAL_GRID = (-8, 9)  # 10^-8 .. 10^8, RanPAC.py optimise_ridge_parameter


def test_ranpac_matches_the_official_code(monkeypatch):
    # Ours holds out a seeded random 20% to choose lambda, the official code the last 20% in loader order: give
    # ours the official split (a reversed order puts the last images first, where ours takes its held-out share).
    monkeypatch.setattr(torch, "randperm", lambda n, generator=None: torch.arange(n - 1, -1, -1))
    tensors, meta = load("ranpac")
    s = meta["setting"]
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=s["img_size"],
                              patch_size=s["patch_size"], embed_dim=s["embed_dim"], depth=s["depth"],
                              num_heads=s["num_heads"], mlp_ratio=s["mlp_ratio"])
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vit.")})
    backbone = VisionBackbone(model.eval(), "timm", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), s["img_size"], "golden")
    strategy = build_strategy("ranpac", backbone, ScenarioInfo("class_incremental", s["classes"], list("abcd")),
                              {"projection_dim": s["M"], "ridge_exponents": OFFICIAL_GRID}).eval()
    strategy.projection.copy_(tensors["W_rand"])
    test = tensors["test_images"].to(torch.uint8).float() / 255
    for task, classes in enumerate(s["tasks"]):
        data = TensorData(tensors[f"task{task}.images"].to(torch.uint8), tensors[f"task{task}.labels"].long())
        ctx = TaskContext(index=task, num_steps=2, train_classes=classes, seen_classes=list(range(classes[-1] + 1)),
                          domain=None, train_data=data)
        strategy.before_task(ctx)
        strategy.after_task(ctx)
        seen = classes[-1] + 1
        torch.testing.assert_close(strategy.gram.float(), tensors[f"task{task}.G"], atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(strategy.class_sums.float(), tensors[f"task{task}.Q"], atol=1e-4, rtol=1e-5)
        assert abs(float(strategy.ridge) / float(tensors[f"task{task}.ridge"]) - 1) < 1e-6
        torch.testing.assert_close(strategy.head[:, :seen].t(), tensors[f"task{task}.head"], **TOL)
        with torch.no_grad():
            torch.testing.assert_close(strategy(test)[:, :seen], tensors[f"task{task}.logits"], **TOL)
