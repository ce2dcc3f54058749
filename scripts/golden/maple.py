"""Golden values for MaPLe from the official code (muzairkhattak/multimodal-prompt-learning: trainers/maple.py
`CustomCLIP`, `MultiModalPromptLearner`, `TextEncoder`, on its own clip/model.py `VisionTransformer_MaPLe` and
`ResidualAttentionBlock_MaPLe`).

    python scripts/golden/maple.py /path/to/multimodal-prompt-learning   # a fetched snapshot (the repository root)

A tiny random CLIP (open_clip's CLIP with OpenAI's layout: QuickGELU, width 64 in both towers so that the official
`build_model` infers 1 head, 2 layers per tower, 16-pixel images in 8-pixel patches, the BPE vocabulary of which
only the rows the prompts use are non-zero) is loaded into the official CLIP by `clip.build_model` with MaPLe's
design details; the official `CustomCLIP` (context "a photo of a", 2 tokens, prompt depth 2: the input layer and
one deeper coupled layer) computes logits on 3 fixed images; recorded: the seed-derived prompt weights (context,
deeper text prompts, coupling maps), the logits, the cross-entropy and the gradients of every prompt parameter.
Patches to run offline / on this CLIP: stub modules for `dassl.*` (unused by `CustomCLIP`); the prompt learner's
hard-coded widths (`nn.Linear(ctx_dim, 768)`: ViT-B/16's vision width; `torch.empty(n_ctx, 512)`: its text width)
replaced by the tiny CLIP's 64 in the module's source before it is executed; `Tensor.half` an identity (the
official code casts the vision prompts to fp16 inside the forward: fp32 throughout here); `Tensor.cuda` /
`Module.cuda` -> CPU; CLIP in fp32 with the exact fp32 weights reloaded after `build_model`.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    AttrDict, cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit, stub_dassl)

CLASSES = ["cat", "dog", "red car"]
WIDTH = 64
CLIP_ARGS = dict(embed_dim=32, vision_cfg=dict(image_size=16, layers=2, width=WIDTH, patch_size=8, head_width=64),
                 text_cfg=dict(context_length=77, vocab_size=49408, width=WIDTH, heads=1, layers=2),
                 quick_gelu=True)
WIDTH_PATCHES = {"nn.Linear(ctx_dim, 768)": 2, "torch.empty(n_ctx, 512)": 1}


def load_patched_trainer(root: Path) -> types.ModuleType:
    """trainers/maple.py with its ViT-B/16 widths (768 vision, 512 text) replaced by the tiny CLIP's."""
    path = root / "trainers" / "maple.py"
    source = path.read_text()
    for old, count in WIDTH_PATCHES.items():
        if source.count(old) != count:
            raise SystemExit(f"{path}: expected {count} x {old!r}; the snapshot differs from the one patched here")
        new = old.replace("768", str(WIDTH)).replace("512", str(WIDTH))
        source = source.replace(old, new)
    module = types.ModuleType("trainers.maple")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.Tensor.half = lambda self, *a, **k: self  # type: ignore[method-assign]
    stub_dassl()
    import open_clip
    from clip import clip
    maple = load_patched_trainer(root)

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

    cfg = AttrDict(TRAINER=AttrDict(MAPLE=AttrDict(N_CTX=2, CTX_INIT="a photo of a", PREC="fp32", PROMPT_DEPTH=2)),
                   INPUT=AttrDict(SIZE=(16, 16)), MODEL=AttrDict(BACKBONE=AttrDict(NAME="ViT-B/16")))
    design = {"trainer": "MaPLe", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0,
              "maple_length": cfg.TRAINER.MAPLE.N_CTX}
    official = clip.build_model({k: v.clone() for k, v in state.items()}, design).float()
    official.load_state_dict(state)
    official.eval()
    torch.manual_seed(1)
    model = maple.CustomCLIP(cfg, CLASSES, official).float()
    for name, p in model.named_parameters():
        p.requires_grad_("prompt_learner" in name)
    learner = model.prompt_learner
    images, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 1])
    model.eval()
    logits = model(images)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    prompts = {"ctx": learner.ctx, "deep_text.0": learner.compound_prompts_text[0],
               "coupling.0.weight": learner.proj.weight, "coupling.0.bias": learner.proj.bias,
               "coupling.1.weight": learner.compound_prompt_projections[0].weight,
               "coupling.1.bias": learner.compound_prompt_projections[0].bias}
    tensors = {f"clip.{k}": v for k, v in state.items() if k != "token_embedding.weight"}
    tensors.update({"token_ids": used.float(), "token_rows": state["token_embedding.weight"][used],
                    "x": images, "y": y.float(), "logits": logits, "loss": loss.reshape(1)})
    tensors.update({f"init.{k}": v for k, v in prompts.items()})
    tensors.update({f"grad.{k}": v.grad for k, v in prompts.items()})
    save_fixture("maple", tensors, {
        "method": "maple", "repository": "muzairkhattak/multimodal-prompt-learning", "commit": snapshot_commit(root),
        "official": "trainers/maple.py CustomCLIP (MultiModalPromptLearner, TextEncoder) and the cross-entropy of "
                    "its training forward; clip/model.py build_model, VisionTransformer_MaPLe, "
                    "ResidualAttentionBlock_MaPLe; clip.tokenize",
        "patches": ["stub dassl.* modules (unused by CustomCLIP)",
                    "trainers/maple.py source: nn.Linear(ctx_dim, 768) -> nn.Linear(ctx_dim, 64) (2x) and "
                    "torch.empty(n_ctx, 512) -> torch.empty(n_ctx, 64): ViT-B/16's hard-coded widths set to the "
                    "tiny CLIP's",
                    "Tensor.half -> identity (the official forward casts the vision prompts to fp16)",
                    "Tensor.cuda / Module.cuda -> CPU",
                    "fp32 throughout, weights reloaded after build_model's fp16 cast"],
        "setting": {"clip": CLIP_ARGS, "classes": CLASSES, "n_ctx": 2, "ctx_init": "a photo of a",
                    "official_prompt_depth": 2, "our_prompt_depth": 9, "pixels": "raw [0, 1] (mean 0, std 1)",
                    "prompt_seed": 1},
        "follows": "the official code as is (vision prompts appended before ln_pre), in fp32",
    })


if __name__ == "__main__":
    main()
