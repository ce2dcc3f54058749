"""APER (adapter variant) against numbers produced by the official code (tests/golden/aper.json says how;
regenerate with scripts/golden/aper.py): the official ViT's weights in timm's, its AdaptFormer adapters and cosine
head in ours, then the first-task logits, loss and gradients, the class prototypes of [frozen, adapted] features and
the prototype scores of test images compared."""
from __future__ import annotations


import timm
import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from bench.models.backbones import VisionBackbone
from golden_fixtures import TOL, load


def test_aper_matches_the_official_code():
    tensors, meta = load("aper")
    s, v = meta["setting"], meta["setting"]["vit"]
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=v["image"],
                              patch_size=v["patch"], embed_dim=v["embed_dim"], depth=v["depth"],
                              num_heads=v["heads"], mlp_ratio=v["mlp_ratio"])
    model.load_state_dict({k[4:]: t for k, t in tensors.items() if k.startswith("vit.")})
    backbone = VisionBackbone(model.eval(), "timm", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), v["image"], "golden")
    info = ScenarioInfo("class_incremental", s["classes"], list("abcd"))
    strategy = build_strategy("aper", backbone, info, {"reduction": s["reduction"],
                                                       "adapter_scale": s["adapter_scale"]})
    ours = {"head.weight": strategy.head.weight, "head.sigma": strategy.head.sigma}
    for i, adapter in enumerate(strategy.adapters):
        for part in ("down", "up"):
            layer = getattr(adapter, part)
            ours[f"adapter.{i}.{part}.weight"], ours[f"adapter.{i}.{part}.bias"] = layer.weight, layer.bias
    with torch.no_grad():  # seed-drawn there: copied in
        for name, p in ours.items():
            p.copy_(tensors[name].reshape(p.shape))
    strategy.eval()  # the official numbers were taken with the adapters' dropout off
    x, y = tensors["x"], tensors["y"].long()
    classes = list(range(s["classes"]))
    images = tensors["train_images"].to(torch.uint8)
    ctx = TaskContext(index=0, num_steps=1, train_classes=classes, seen_classes=classes, domain=None,
                      train_data=TensorData(images, tensors["train_labels"].long()))
    torch.testing.assert_close(strategy.head(strategy.adapted(x)), tensors["logits"], **TOL)
    loss = strategy.training_loss(Batch(x=x, y=y), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    for name, p in ours.items():
        assert p.grad is not None, f"{name} got no gradient (the official one trains)"
        torch.testing.assert_close(p.grad.reshape(tensors[f"grad.{name}"].shape), tensors[f"grad.{name}"], **TOL,
                                   msg=lambda m, name=name: f"gradient of {name}: {m}")
    strategy.after_task(ctx)
    torch.testing.assert_close(strategy.prototypes, tensors["prototypes"], **TOL)
    with torch.no_grad():
        torch.testing.assert_close(strategy(tensors["test_x"]), tensors["test_logits"], **TOL)
