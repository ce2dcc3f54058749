"""Golden values for RanPAC from the official code (RanPAC/RanPAC: RanPAC.py `Learner.replace_fc`,
`optimise_ridge_parameter`, inc_net.py `CosineLinear` with `use_RP`).

    python scripts/golden/ranpac.py /path/to/RanPAC      # a fetched snapshot of the repository

A timm ViT (12 blocks, width 16, random weights) is the `convnet`; a fixed W_rand (16 x 24); two tasks (classes
0-1, then 2-3) of 60 images each go through `replace_fc` (G, Q accumulated, lambda chosen on the task's own
features from the official grid 10^-8..10^8 with the last 20% in loader order held out, W_o solved); recorded:
the chosen lambda, G, Q, W_o and the logits of 5 test images after each task. The first-session adaptation
(PETL) is off, as in ours. Images are uint8 / 255, no normalisation.
Bypassed, not patched: the constructors of `Learner` and `SimpleVitNet` (pretrained weights, data manager); the
objects are made with `__new__` and given what the methods read. `Tensor.cuda` and `.to(device='cuda')` make CPU
copies. The chosen lambda is read by wrapping `optimise_ridge_parameter` (its result is recorded, not changed).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit  # noqa: E402
from simplecil import ARCH, tiny_vit  # noqa: E402

M, CLASSES = 24, 4


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    original_to = torch.Tensor.to
    torch.Tensor.to = lambda self, *a, **k: (self.clone() if k.get("device") == "cuda" or a[:1] == ("cuda",)
                                             else original_to(self, *a, **k))  # type: ignore[method-assign]
    from inc_net import CosineLinear, SimpleVitNet
    from RanPAC import Learner

    convnet = tiny_vit(0)
    convnet.out_dim = ARCH["embed_dim"]
    net = SimpleVitNet.__new__(SimpleVitNet)
    nn.Module.__init__(net)
    net.convnet, net.fc = convnet, None
    learner = Learner.__new__(Learner)
    learner._network, learner.args, learner.is_dil, learner.total_classnum = net, {"use_RP": True, "M": M}, False, \
        CLASSES
    torch.manual_seed(3)
    learner.W_rand = torch.randn(ARCH["embed_dim"], M)
    learner.Q, learner.G = torch.zeros(M, CLASSES), torch.zeros(M, M)
    chosen: list[float] = []
    official_ridge = Learner.optimise_ridge_parameter

    def recording(self, features, y):
        ridge = official_ridge(self, features, y)
        chosen.append(float(ridge))
        return ridge

    Learner.optimise_ridge_parameter = recording

    gen = torch.Generator().manual_seed(1)
    tensors = {f"vit.{k}": v for k, v in convnet.state_dict().items()}
    test = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=gen)
    tensors.update({"test_images": test.float(), "W_rand": learner.W_rand})
    for task, classes in enumerate(([0, 1], [2, 3])):
        images = torch.randint(0, 256, (60, 3, 16, 16), dtype=torch.uint8, generator=gen)
        labels = torch.tensor(classes * 30)
        # incremental_train: the head is replaced by one with more classes (SimpleVitNet.update_fc without RP)
        net.fc = CosineLinear(ARCH["embed_dim"], classes[-1] + 1)
        net.fc.weight = nn.Parameter(torch.zeros(classes[-1] + 1, M))  # setup_RP's M-wide head
        learner.replace_fc([(None, images.float() / 255, labels)])
        with torch.no_grad():
            logits = net(test.float() / 255)["logits"]
        tensors.update({f"task{task}.images": images.float(), f"task{task}.labels": labels.float(),
                        f"task{task}.ridge": torch.tensor([chosen[-1]]), f"task{task}.G": learner.G.clone(),
                        f"task{task}.Q": learner.Q.clone(), f"task{task}.head": net.fc.weight.detach().clone(),
                        f"task{task}.logits": logits})
    save_fixture("ranpac", tensors, {
        "method": "ranpac", "repository": "RanPAC/RanPAC", "commit": snapshot_commit(root),
        "official": "RanPAC.py Learner.replace_fc + optimise_ridge_parameter, inc_net.py CosineLinear (use_RP)",
        "patches": ["torch.Tensor.cuda and .to(device='cuda') -> CPU copies",
                    "Learner and SimpleVitNet made with __new__ (constructors download weights, read data)",
                    "optimise_ridge_parameter wrapped to record its result"],
        "setting": {**ARCH, "M": M, "classes": CLASSES, "tasks": [[0, 1], [2, 3]], "images_per_task": 60,
                    "ridge_grid": "10^-8..10^8", "held_out": "last 20% in loader order",
                    "pixels": "uint8 / 255 (mean 0, std 1)", "lambdas": chosen},
        "follows": "the official code as is (no first-session adaptation)",
    })


if __name__ == "__main__":
    main()
