"""Golden values for APER with adapters from the official code (zhoudw-zdw/RevisitingCIL: models/aper_adapter.py
`Learner` (its first-task loss and `replace_fc`), utils/inc_net.py `SimpleVitNet` and
`MultiBranchCosineIncrementalNet`, convs/vision_transformer_adapter.py `VisionTransformer` with AdaptFormer's
`Adapter`, convs/linears.py `CosineLinear`).

    python scripts/golden/aper.py /path/to/RevisitingCIL      # a fetched snapshot (the repository root)

A tiny random timm ViT (16-pixel images in 8-pixel patches, width 48, 2 blocks, 2 heads, MLP ratio 4) is loaded
into the official adapter ViT (qkv split into q/k/v, `mlp.fc*` renamed as `vit_base_patch16_224_adapter` does),
configured as `get_convnet` configures it for `aper_adapter` (AdaptFormer parallel to the MLP, no layer norm,
"lora" init, scale 0.1, ffn_num 4 = 48 // 12); the official `SimpleVitNet` (that ViT + `CosineLinear` over 4
classes) gives the first-task logits and cross-entropy on 3 images and their gradients; then the official dual
branch (`MultiBranchCosineIncrementalNet`: the frozen ViT and the adapted one, concatenated) has its weights replaced
by class prototypes with the official `replace_fc` on 8 training images, and scores 3 test images.
Recorded: the ViT, the adapters and the head (seed-drawn), logits, loss, gradients, prototypes and the test logits.
Patches to run offline / make the numbers deterministic: the adapters' up-projections get random values (official
"lora" init: zero, which would make the adapted model equal the frozen one and leave the adapters' placement
untested); the loss is taken with dropout off (eval mode; the official first-task training has the adapters'
dropout 0.1 on); `easydict.EasyDict` -> a plain attribute dict; the networks are built with `__new__` and their
official methods (`update_fc`, `generate_fc`, `replace_fc`, `forward`) rather than their constructors, which
download ViT-B/16 through `get_convnet` (the frozen branch is the tiny timm ViT, as `get_convnet` returns timm's
ViT without adapters); `Tensor.cuda` / `Module.cuda` -> CPU.
"""
from __future__ import annotations

import sys
import types
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import AttrDict, cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit  # noqa: E402

VIT = dict(image=16, patch=8, embed_dim=48, depth=2, heads=2, mlp_ratio=4.0)
CLASSES, REDUCTION = 4, 12


def official_names(state: dict[str, torch.Tensor], width: int) -> dict[str, torch.Tensor]:
    """timm's ViT state -> the official adapter ViT's (the conversion of `vit_base_patch16_224_adapter`, with its
    hard-coded 768 set to the tiny width)."""
    out = {}
    for key, value in state.items():
        if "qkv." in key:
            for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                out[key.replace("qkv", name)] = value[i * width:(i + 1) * width]
        else:
            out[key.replace("mlp.", "")] = value
    return out


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    sys.modules["easydict"] = types.SimpleNamespace(EasyDict=AttrDict)  # type: ignore[assignment]
    import timm
    from convs.vision_transformer_adapter import VisionTransformer
    from models.aper_adapter import Learner
    from utils.inc_net import MultiBranchCosineIncrementalNet, SimpleVitNet

    torch.manual_seed(0)
    width = VIT["embed_dim"]
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=VIT["image"],
                            patch_size=VIT["patch"], embed_dim=width, depth=VIT["depth"], num_heads=VIT["heads"],
                            mlp_ratio=VIT["mlp_ratio"]).eval()
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {k: v.clone() for k, v in vit.state_dict().items()}
    tuning = AttrDict(ffn_adapt=True, ffn_option="parallel", ffn_adapter_layernorm_option="none",
                      ffn_adapter_init_option="lora", ffn_adapter_scalar="0.1", ffn_num=width // REDUCTION,
                      d_model=width, vpt_on=False, vpt_num=0)
    torch.manual_seed(1)
    adapted = VisionTransformer(img_size=VIT["image"], patch_size=VIT["patch"], embed_dim=width, depth=VIT["depth"],
                                num_heads=VIT["heads"], mlp_ratio=VIT["mlp_ratio"], qkv_bias=True,
                                norm_layer=partial(nn.LayerNorm, eps=1e-6), num_classes=0, global_pool=False,
                                drop_path_rate=0.0, tuning_config=tuning)
    missing, unexpected = adapted.load_state_dict(official_names(state, width), strict=False)
    assert all("adaptmlp" in k for k in missing) and not unexpected, (missing, unexpected)
    with torch.no_grad():
        for block in adapted.blocks:  # see the docstring: a zero up-projection would test nothing
            block.adaptmlp.up_proj.weight.normal_(0, 0.3)
            block.adaptmlp.up_proj.bias.normal_(0, 0.1)
            block.adaptmlp.down_proj.bias.normal_(0, 0.1)
    adapted.out_dim = width
    for name, p in adapted.named_parameters():  # as vit_base_patch16_224_adapter: only the adapters train
        p.requires_grad_("adaptmlp" in name)

    net = SimpleVitNet.__new__(SimpleVitNet)
    nn.Module.__init__(net)
    net.convnet, net.fc = adapted, None
    net.update_fc(CLASSES)
    net.eval()  # dropout off: see the docstring
    x, y = torch.rand(3, 3, VIT["image"], VIT["image"]), torch.tensor([0, 3, 1])
    logits = net(x)["logits"]
    loss = F.cross_entropy(logits, y)
    loss.backward()

    dual = MultiBranchCosineIncrementalNet.__new__(MultiBranchCosineIncrementalNet)
    nn.Module.__init__(dual)
    dual.convnet, dual.fc, dual.modeltype = nn.Identity(), None, "vit"
    vit.out_dim = width
    dual.convnets = nn.ModuleList([vit, adapted])  # construct_dual_branch_network's order: frozen, then tuned
    dual._feature_dim = 2 * width
    dual.fc = dual.generate_fc(dual._feature_dim, CLASSES)
    train_images = torch.randint(0, 256, (8, 3, VIT["image"], VIT["image"]), dtype=torch.uint8)
    train_labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    learner = types.SimpleNamespace(_network=dual, train_dataset=types.SimpleNamespace(labels=train_labels.numpy()))
    batches = [(None, train_images[i:i + 3].float() / 255, train_labels[i:i + 3]) for i in range(0, 8, 3)]
    Learner.replace_fc(learner, batches, dual, None)
    test = torch.rand(3, 3, VIT["image"], VIT["image"])
    with torch.no_grad():
        test_logits = dual(test)["logits"]

    tensors = {f"vit.{k}": v for k, v in state.items()}
    for i, block in enumerate(adapted.blocks):
        a = block.adaptmlp
        for name, p in (("down.weight", a.down_proj.weight), ("down.bias", a.down_proj.bias),
                        ("up.weight", a.up_proj.weight), ("up.bias", a.up_proj.bias)):
            tensors[f"adapter.{i}.{name}"], tensors[f"grad.adapter.{i}.{name}"] = p, p.grad
    tensors.update({"head.weight": net.fc.weight, "head.sigma": net.fc.sigma, "grad.head.weight": net.fc.weight.grad,
                    "grad.head.sigma": net.fc.sigma.grad, "x": x, "y": y.float(), "logits": logits,
                    "loss": loss.reshape(1), "train_images": train_images.float(), "train_labels":
                    train_labels.float(), "prototypes": dual.fc.weight, "test_x": test, "test_logits": test_logits})
    save_fixture("aper", tensors, {
        "method": "aper", "repository": "zhoudw-zdw/RevisitingCIL", "commit": snapshot_commit(root),
        "official": "models/aper_adapter.py Learner (_init_train's loss, replace_fc); utils/inc_net.py SimpleVitNet "
                    "(update_fc, forward), MultiBranchCosineIncrementalNet (generate_fc, forward); "
                    "convs/vision_transformer_adapter.py VisionTransformer, Block, Adapter; convs/linears.py "
                    "CosineLinear",
        "patches": ["timm ViT weights converted as vit_base_patch16_224_adapter does (768 -> the tiny width)",
                    "adapter up-projections and down biases drawn at random (official lora init: zero)",
                    "loss with dropout off (eval mode; official first-task training: adapter dropout 0.1)",
                    "easydict.EasyDict -> a plain attribute dict",
                    "SimpleVitNet / MultiBranchCosineIncrementalNet built with __new__ + their official methods "
                    "(their constructors download ViT-B/16); the frozen branch is the tiny timm ViT",
                    "Tensor.cuda / Module.cuda -> CPU"],
        "setting": {"vit": VIT, "classes": CLASSES, "reduction": REDUCTION, "adapter_scale": 0.1,
                    "pixels": "raw [0, 1] (mean 0, std 1)", "adapter_seed": 1},
        "follows": "the official code as is, in fp32",
    })


if __name__ == "__main__":
    main()
