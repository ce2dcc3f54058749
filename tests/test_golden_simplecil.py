"""SimpleCIL against numbers produced by the official code (tests/golden/simplecil.json says how; regenerate with
scripts/golden/simplecil.py): the same ViT and two tasks of images, then prototypes and test logits compared."""
from __future__ import annotations


import timm
import torch

from bench.core.data import ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from bench.models.backbones import VisionBackbone
from golden_fixtures import TOL, load


def test_simplecil_matches_the_official_code():
    tensors, meta = load("simplecil")
    s = meta["setting"]
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=s["img_size"],
                              patch_size=s["patch_size"], embed_dim=s["embed_dim"], depth=s["depth"],
                              num_heads=s["num_heads"], mlp_ratio=s["mlp_ratio"])
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vit.")})
    backbone = VisionBackbone(model.eval(), "timm", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), s["img_size"], "golden")
    strategy = build_strategy("simplecil", backbone, ScenarioInfo("class_incremental", 4, list("abcd")), {}).eval()
    test = tensors["test_images"].to(torch.uint8).float() / 255
    for task, classes in enumerate(s["tasks"]):
        data = TensorData(tensors[f"task{task}.images"].to(torch.uint8), tensors[f"task{task}.labels"].long())
        ctx = TaskContext(index=task, num_steps=2, train_classes=classes, seen_classes=list(range(classes[-1] + 1)),
                          domain=None, train_data=data)
        strategy.before_task(ctx)
        strategy.after_task(ctx)
        seen = classes[-1] + 1
        torch.testing.assert_close(strategy.prototypes[:seen], tensors[f"task{task}.prototypes"], **TOL)
        with torch.no_grad():
            torch.testing.assert_close(strategy(test)[:, :seen], tensors[f"task{task}.logits"], **TOL)
