"""Golden values for SimpleCIL from the official code (zhoudw-zdw/RevisitingCIL: models/simplecil.py `replace_fc`,
utils/inc_net.py `SimpleVitNet.update_fc` / `forward`, convs/linears.py `CosineLinear`).

    python scripts/golden/simplecil.py /path/to/RevisitingCIL      # a fetched snapshot of the repository

A timm ViT (12 blocks, width 16, 16-pixel images in 8-pixel patches, random weights: the official code loads
pretrained ones) is the `convnet`; two tasks (classes 0-1, then 2-3) of 6 images each go through `update_fc` and
`replace_fc` as `incremental_train` calls them; recorded: the prototypes (fc weight) and the logits of 5 test
images after each task. Images are uint8 pixels / 255 (what our harness feeds), no normalisation (mean 0, std 1).
Bypassed, not patched: the constructors of `SimpleVitNet` and `Learner`, which download pretrained weights and
read a data manager; the objects are made with `__new__` and given the attributes the methods read (`convnet`
with `out_dim`, `fc`, `train_dataset.labels`). `Tensor.cuda` makes a CPU copy.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit  # noqa: E402

ARCH = dict(img_size=16, patch_size=8, embed_dim=16, depth=12, num_heads=2, mlp_ratio=2.0)


def tiny_vit(seed: int) -> nn.Module:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **ARCH)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    from models.simplecil import Learner
    from utils.inc_net import SimpleVitNet

    convnet = tiny_vit(0)
    net = SimpleVitNet.__new__(SimpleVitNet)
    nn.Module.__init__(net)
    net.convnet, net.fc = convnet, None
    convnet.out_dim = ARCH["embed_dim"]  # what get_convnet sets on its timm ViT (768 there)
    learner = Learner.__new__(Learner)
    learner._network = net

    gen = torch.Generator().manual_seed(1)
    tensors = {f"vit.{k}": v for k, v in convnet.state_dict().items()}
    test = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=gen)
    tensors["test_images"] = test.float()
    for task, classes in enumerate(([0, 1], [2, 3])):
        images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=gen)
        labels = torch.tensor(classes * 3)
        net.update_fc(classes[-1] + 1)
        learner.train_dataset = SimpleNamespace(labels=labels.numpy())
        loader = [(None, images[:4].float() / 255, labels[:4]), (None, images[4:].float() / 255, labels[4:])]
        learner.replace_fc(loader, net, None)
        with torch.no_grad():
            logits = net(test.float() / 255)["logits"]
        tensors.update({f"task{task}.images": images.float(), f"task{task}.labels": labels.float(),
                        f"task{task}.prototypes": net.fc.weight.detach().clone(), f"task{task}.logits": logits})
    save_fixture("simplecil", tensors, {
        "method": "simplecil", "repository": "zhoudw-zdw/RevisitingCIL", "commit": snapshot_commit(root),
        "official": "models/simplecil.py Learner.replace_fc, utils/inc_net.py SimpleVitNet.update_fc/forward, "
                    "convs/linears.py CosineLinear",
        "patches": ["torch.Tensor.cuda -> a CPU copy (clone)",
                    "SimpleVitNet and Learner made with __new__ (their constructors download pretrained weights)"],
        "setting": {**ARCH, "tasks": [[0, 1], [2, 3]], "images_per_task": 6, "test_images": 5,
                    "pixels": "uint8 / 255 (mean 0, std 1)"},
        "follows": "the official code as is (sigma 1: never trained)",
    })


if __name__ == "__main__":
    main()
