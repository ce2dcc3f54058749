"""Golden values for KgCoOp from the official code (htyao89/KgCoOp: trainers/kgcoop.py `CustomCLIP`,
`PromptLearner`, `TextEncoder` and the loss of `forward_backward`, on its own clip/model.py).

    python scripts/golden/kgcoop.py /path/to/KgCoOp      # a fetched snapshot (the repository root)

A tiny random CLIP (open_clip's CLIP with OpenAI's layout: QuickGELU, width 64 so that the official
`build_model` infers 1 head, 2 layers per tower, 16-pixel images in 8-pixel patches, the BPE vocabulary of
49,408 tokens of which only the rows the prompts use are non-zero, so the fixture stays small) is loaded into
the official CLIP by `clip.build_model`; the official `CustomCLIP` (context "a photo of a", 4 tokens, unified
context, class token at the end, the ImageNet template "a photo of a {}." as the hand-written anchor) computes
logits and the penalty on 3 fixed images; recorded: logits, 1 - mean cos, the loss CE + 8 * penalty and the
context's gradient.
Patches to run offline: stub modules for `dassl.*` (the trainer registry and helpers the module imports but
`CustomCLIP` does not use); `load_clip_to_cpu` (downloads CLIP) returns the tiny CLIP; `Tensor.cuda` and
`Module.cuda` make CPU copies; both CLIPs in fp32 with the exact fp32 weights reloaded after `build_model`'s fp16
conversion (the trainer casts only the learned branch back to fp32, so the official anchor is fp16 on a GPU).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    AttrDict, cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit, stub_dassl)

CLASSES = ["cat", "dog", "red car"]
CLIP_ARGS = dict(embed_dim=32, vision_cfg=dict(image_size=16, layers=2, width=64, patch_size=8, head_width=64),
                 text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=2), quick_gelu=True)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    stub_dassl()
    import open_clip
    from clip import clip
    import trainers.kgcoop as kg

    torch.manual_seed(0)
    tiny = open_clip.model.CLIP(**CLIP_ARGS)
    with torch.no_grad():
        for p in tiny.parameters():
            p.add_(0.05 * torch.randn_like(p))
        texts = ["a photo of a"] + [f"a photo of a {c}." for c in CLASSES]
        used = torch.unique(torch.cat([clip.tokenize(t) for t in texts]))
        keep = torch.zeros(49408, dtype=torch.bool)
        keep[used] = True
        tiny.token_embedding.weight[~keep] = 0  # only these rows matter: the fixture stores just them
    state = {k: v.clone() for k, v in tiny.state_dict().items() if k != "attn_mask"}

    def fp32_clip(cfg=None):
        """The official build_model (which converts to fp16), then back to fp32 with the exact fp32 weights."""
        model = clip.build_model({k: v.clone() for k, v in state.items()}).float()
        model.load_state_dict(state)
        return model.eval()

    official = fp32_clip()
    kg.load_clip_to_cpu = fp32_clip
    cfg = AttrDict(TRAINER=AttrDict(COOP=AttrDict(N_CTX=4, CTX_INIT="a photo of a", CSC=False,
                                                  CLASS_TOKEN_POSITION="end", PREC="fp32", W=8.0),
                                    COCOOP=AttrDict(PREC="fp32")),
                   INPUT=AttrDict(SIZE=(16, 16)), DATASET=AttrDict(NAME="ImageNet"),
                   MODEL=AttrDict(BACKBONE=AttrDict(NAME="ViT-B/16")))
    model = kg.CustomCLIP(cfg, CLASSES, official)
    images, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 1])
    logits, score = model(images)
    loss = F.cross_entropy(logits, y) + cfg.TRAINER.COOP.W * score
    loss.backward()
    tensors = {f"clip.{k}": v for k, v in state.items() if k != "token_embedding.weight"}
    tensors.update({"token_ids": used.float(), "token_rows": state["token_embedding.weight"][used],
                    "x": images, "y": y.float(), "ctx": model.prompt_learner.ctx, "logits": logits,
                    "score": score.reshape(1), "loss": loss.reshape(1),
                    "grad.ctx": model.prompt_learner.ctx.grad})
    save_fixture("kgcoop", tensors, {
        "method": "kgcoop", "repository": "htyao89/KgCoOp", "commit": snapshot_commit(root),
        "official": "KgCoOp/trainers/kgcoop.py CustomCLIP (PromptLearner, TextEncoder), forward_backward's loss; "
                    "KgCoOp/clip build_model and tokenize",
        "patches": ["stub dassl.* modules (unused by CustomCLIP)", "load_clip_to_cpu -> the tiny CLIP",
                    "Tensor.cuda / Module.cuda -> CPU", "fp32 throughout, weights reloaded after build_model's fp16 cast (official anchor: fp16 on GPU)"],
        "setting": {"clip": CLIP_ARGS, "classes": CLASSES, "n_ctx": 4, "ctx_init": "a photo of a",
                    "template": "a photo of a {}.", "kg_weight": 8.0, "pixels": "raw [0, 1] (mean 0, std 1)"},
        "follows": "the official code as is, in fp32",
    })


if __name__ == "__main__":
    main()
