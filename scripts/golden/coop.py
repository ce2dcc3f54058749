"""Golden values for CoOp and CoCoOp from the official code (KaiyangZhou/CoOp: trainers/coop.py and
trainers/cocoop.py `CustomCLIP`, on the repository's clip/).

    python scripts/golden/coop.py /path/to/CoOp      # a fetched snapshot of the repository

The same tiny CLIP as scripts/golden/kgcoop.py (BPE vocabulary, OpenAI layout, only used token rows non-zero) is
loaded by the official `clip.build_model`; context "a photo of a" (4 tokens, unified, class token at the end).
CoOp: logits on 3 images, CE and the context's gradient. CoCoOp: the official meta-net (random weights), the loss
its `CustomCLIP` returns in training mode and the gradients of the context and the meta-net, and eval logits.
Patches to run offline: stub `dassl.*` modules (unused by `CustomCLIP`); `Tensor.cuda` / `Module.cuda` -> CPU;
fp32 with the exact weights reloaded after `build_model`'s fp16 cast (the trainers cast to fp32 for PREC fp32).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    AttrDict, cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit, stub_dassl)
from kgcoop import CLASSES, CLIP_ARGS  # noqa: E402


def tiny_state(clip) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    import open_clip

    torch.manual_seed(0)
    tiny = open_clip.model.CLIP(**CLIP_ARGS)
    with torch.no_grad():
        for p in tiny.parameters():
            p.add_(0.05 * torch.randn_like(p))
        texts = ["a photo of a"] + [f"a photo of a {c}." for c in CLASSES]
        used = torch.unique(torch.cat([clip.tokenize(t) for t in texts]))
        keep = torch.zeros(tiny.token_embedding.weight.shape[0], dtype=torch.bool)
        keep[used] = True
        tiny.token_embedding.weight[~keep] = 0
    return {k: v.clone() for k, v in tiny.state_dict().items() if k != "attn_mask"}, used


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    stub_dassl()
    from clip import clip
    import trainers.cocoop as cocoop
    import trainers.coop as coop

    state, used = tiny_state(clip)

    def fp32_clip():
        model = clip.build_model({k: v.clone() for k, v in state.items()}).float()
        model.load_state_dict(state)
        return model.eval()

    settings = AttrDict(N_CTX=4, CTX_INIT="a photo of a", CSC=False, CLASS_TOKEN_POSITION="end", PREC="fp32")
    cfg = AttrDict(TRAINER=AttrDict(COOP=settings, COCOOP=settings), INPUT=AttrDict(SIZE=(16, 16)),
                   DATASET=AttrDict(NAME="ImageNet"), MODEL=AttrDict(BACKBONE=AttrDict(NAME="ViT-B/16")))
    common = {f"clip.{k}": v for k, v in state.items() if k != "token_embedding.weight"}
    common.update({"token_ids": used.float(), "token_rows": state["token_embedding.weight"][used]})
    images, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 1])
    meta = {"repository": "KaiyangZhou/CoOp", "commit": snapshot_commit(root),
            "patches": ["stub dassl.* modules (unused by CustomCLIP)", "Tensor.cuda / Module.cuda -> CPU",
                        "fp32, weights reloaded after build_model's fp16 cast"],
            "setting": {"clip": CLIP_ARGS, "classes": CLASSES, "n_ctx": 4, "ctx_init": "a photo of a",
                        "pixels": "raw [0, 1] (mean 0, std 1)"},
            "follows": "the official code as is, in fp32"}

    model = coop.CustomCLIP(cfg, CLASSES, fp32_clip())
    logits = model(images)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    save_fixture("coop", {**common, "x": images, "y": y.float(), "ctx": model.prompt_learner.ctx,
                          "logits": logits, "loss": loss.reshape(1), "grad.ctx": model.prompt_learner.ctx.grad},
                 {**meta, "method": "coop", "official": "trainers/coop.py CustomCLIP, forward_backward's CE"})

    torch.manual_seed(1)
    model = cocoop.CustomCLIP(cfg, CLASSES, fp32_clip())
    learner = model.prompt_learner
    with torch.no_grad():
        for p in learner.meta_net.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    model.train()
    loss = model(images, y)  # training mode: the official CustomCLIP returns CE
    loss.backward()
    model.eval()
    with torch.no_grad():
        logits = model(images)
    tensors = {**common, "x": images, "y": y.float(), "ctx": learner.ctx, "logits": logits,
               "loss": loss.reshape(1), "grad.ctx": learner.ctx.grad}
    for name, p in learner.meta_net.named_parameters():
        tensors[f"meta_net.{name}"] = p
        tensors[f"grad.meta_net.{name}"] = p.grad
    save_fixture("cocoop", tensors, {**meta, "method": "cocoop",
                                     "official": "trainers/cocoop.py CustomCLIP (loss in training mode)"})


if __name__ == "__main__":
    main()
