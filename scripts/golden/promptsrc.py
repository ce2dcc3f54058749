"""Golden values for PromptSRC from the official code (muzairkhattak/PromptSRC: trainers/promptsrc.py `CustomCLIP`,
`VLPromptLearner`, the loss of `PromptSRC.forward_backward` and its Gaussian epoch weights `get_gauss`, on its own
clip/model.py `VisionTransformer` and `ResidualAttentionBlock_IVLP`).

    python scripts/golden/promptsrc.py /path/to/PromptSRC      # a fetched snapshot (the repository root)

A tiny random CLIP (open_clip's CLIP with OpenAI's layout: QuickGELU, width 64 in both towers so that the official
`build_model` infers 1 head, 2 layers per tower, 16-pixel images in 8-pixel patches, the BPE vocabulary of which
only the rows the prompts use are non-zero) is loaded into the official CLIP by `clip.build_model` with the IVLP
design details (4 text and 4 vision tokens, depth 2 in both towers: the input layer and one deeper layer); the
official `CustomCLIP` in training mode on 3 fixed images gives the prompted and frozen features and logits, and the
official `forward_backward` (run on a stand-in trainer whose optimizer does nothing) the loss CE + 25 * L1(text) +
10 * L1(image) + KL(zero-shot || prompted) and the gradients; recorded with them: the seed-derived prompts, the
frozen (template-averaged) text features and the Gaussian epoch weights for 20 epochs, mean 15, std 1.
Patches to run offline: stub modules for `dassl.*` (the trainer registry and helpers); `load_clip_to_cpu`
(downloads CLIP) builds the tiny CLIP with the official `build_model` and the official design details; the teacher's
template list `IMAGENET_TEMPLATES` (the full ImageNet list) replaced by the 7 CoOp-selected templates that ours
averages (a difference ours names); `Tensor.half` an identity (the official forward casts prompts and the teacher's
text features to fp16); `Tensor.cuda` / `Module.cuda` -> CPU; CLIPs in fp32 with the exact fp32 weights reloaded
after `build_model`.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    AttrDict, DASSL_REGISTRY, cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit, stub_modules)

CLASSES = ["cat", "dog", "red car"]
CLIP_ARGS = dict(embed_dim=32, vision_cfg=dict(image_size=16, layers=2, width=64, patch_size=8, head_width=64),
                 text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=2), quick_gelu=True)
# CoOp's seven selected ImageNet templates: the teacher ours averages (the official code averages the full list).
TEMPLATES = ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
             "a {} in a video game.", "art of the {}.", "a photo of the small {}."]
WEIGHTS = dict(TEXT_LOSS_WEIGHT=25.0, IMAGE_LOSS_WEIGHT=10.0)
GPA = dict(epochs=20, mean=15.0, std=1.0)


def stub_trainer_imports() -> None:
    modules = {"dassl": {}, "dassl.engine": {"TRAINER_REGISTRY": DASSL_REGISTRY, "TrainerX": object},
               "dassl.utils": {"load_pretrained_weights": None, "load_checkpoint": None},
               "dassl.optim": {"build_optimizer": None, "build_lr_scheduler": None},
               "trainers.imagenet_templates": {"IMAGENET_TEMPLATES": TEMPLATES}}
    stub_modules(modules)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.Tensor.half = lambda self, *a, **k: self  # type: ignore[method-assign]
    stub_trainer_imports()
    import open_clip
    from clip import clip
    import trainers.promptsrc as src

    torch.manual_seed(0)
    tiny = open_clip.model.CLIP(**CLIP_ARGS)
    with torch.no_grad():
        for p in tiny.parameters():
            p.add_(0.05 * torch.randn_like(p))
        texts = ["a photo of a"] + [f"a photo of a {c}." for c in CLASSES]
        texts += [t.replace("{}", c) for t in TEMPLATES for c in CLASSES]
        used = torch.unique(torch.cat([clip.tokenize(t) for t in texts]))
        keep = torch.zeros(49408, dtype=torch.bool)
        keep[used] = True
        tiny.token_embedding.weight[~keep] = 0  # only these rows matter: the fixture stores just them
    state = {k: v.clone() for k, v in tiny.state_dict().items() if k != "attn_mask"}

    def tiny_clip(cfg, zero_shot_model=False):
        """The official design details and build_model (fp16), then fp32 with the exact fp32 weights (the
        prompts keep their seed-drawn values: they are not in the state)."""
        p = cfg.TRAINER.PROMPTSRC
        design = {"trainer": "IVLP", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0}
        if not zero_shot_model:
            design = {"trainer": "IVLP", "vision_depth": p.PROMPT_DEPTH_VISION, "language_depth": p.PROMPT_DEPTH_TEXT,
                      "vision_ctx": p.N_CTX_VISION, "language_ctx": p.N_CTX_TEXT}
        model = clip.build_model({k: v.clone() for k, v in state.items()}, design).float()
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert all("VPT" in k for k in missing) and not unexpected, (missing, unexpected)
        return model.eval()

    src.load_clip_to_cpu = tiny_clip
    cfg = AttrDict(TRAINER=AttrDict(PROMPTSRC=AttrDict(N_CTX_TEXT=4, N_CTX_VISION=4, CTX_INIT="a photo of a",
                                                       PROMPT_DEPTH_TEXT=2, PROMPT_DEPTH_VISION=2, PREC="fp32",
                                                       GPA_MEAN=GPA["mean"], GPA_STD=GPA["std"], **WEIGHTS)),
                   INPUT=AttrDict(SIZE=(16, 16)), OPTIM=AttrDict(MAX_EPOCH=GPA["epochs"]),
                   MODEL=AttrDict(BACKBONE=AttrDict(NAME="ViT-B/16")))
    torch.manual_seed(1)
    clip_model = tiny_clip(cfg)
    model = src.CustomCLIP(cfg, CLASSES, clip_model)
    for name, param in model.named_parameters():  # as the official build_model of the trainer
        if "prompt_learner" not in name:
            param.requires_grad_("VPT" in name)
        elif "ZS_image_encoder" in name:
            param.requires_grad_(False)
    images, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 1])
    model.train()
    with torch.no_grad():
        ce, text, frozen_text, frozen_image, image, zero_shot_logits, logits = model(images, y)

    noop = types.SimpleNamespace(zero_grad=lambda: None, step=lambda: None)
    trainer = types.SimpleNamespace(model=model, optim=noop, scaler=None, cfg=cfg, batch_idx=0, num_batches=2,
                                    step_counter=1,
                                    parse_batch_train=lambda batch: (batch["img"], batch["label"]))
    summary = src.PromptSRC.forward_backward(trainer, {"img": images, "label": y})
    text_blocks, vision_blocks = clip_model.transformer.resblocks, clip_model.visual.transformer.resblocks
    prompts = {"ctx": model.prompt_learner.ctx, "deep_text.0": text_blocks[1].VPT_shallow,
               "vision.0": clip_model.visual.VPT, "vision.1": vision_blocks[1].VPT_shallow}
    gauss = src.PromptSRC.get_gauss(None, GPA["mean"], GPA["std"])
    weights = torch.tensor([gauss(a) for a in range(1, GPA["epochs"] + 1)], dtype=torch.float64)
    tensors = {f"clip.{k}": v for k, v in state.items() if k != "token_embedding.weight"}
    tensors.update({"token_ids": used.float(), "token_rows": state["token_embedding.weight"][used],
                    "x": images, "y": y.float(), "logits": logits, "ce": ce.reshape(1), "text": text,
                    "frozen_text": frozen_text, "frozen_image": frozen_image, "image": image,
                    "zero_shot_logits": zero_shot_logits, "loss": torch.tensor([summary["loss"]]),
                    "gpa_weights": weights / weights.sum()})
    tensors.update({f"init.{k}": v for k, v in prompts.items()})
    tensors.update({f"grad.{k}": v.grad for k, v in prompts.items()})
    save_fixture("promptsrc", tensors, {
        "method": "promptsrc", "repository": "muzairkhattak/PromptSRC", "commit": snapshot_commit(root),
        "official": "trainers/promptsrc.py CustomCLIP (VLPromptLearner, TextEncoder, the frozen teacher), "
                    "PromptSRC.forward_backward's loss (fp32 branch), PromptSRC.get_gauss; clip/model.py "
                    "build_model, VisionTransformer, ResidualAttentionBlock_IVLP; clip.tokenize",
        "patches": ["stub dassl.* modules (unused by CustomCLIP and the loss)",
                    "load_clip_to_cpu -> the tiny CLIP through the official build_model and design details",
                    "trainers.imagenet_templates.IMAGENET_TEMPLATES -> CoOp's 7 selected templates (ours; a "
                    "difference ours names)",
                    "Tensor.half -> identity (the official forward casts prompts and teacher text to fp16)",
                    "Tensor.cuda / Module.cuda -> CPU",
                    "forward_backward run on a stand-in trainer whose optimizer does nothing (loss and gradients "
                    "only; no GPA step: batch 0 of 2)",
                    "fp32 throughout, weights reloaded after build_model's fp16 cast"],
        "setting": {"clip": CLIP_ARGS, "classes": CLASSES, "n_ctx_text": 4, "n_ctx_vision": 4,
                    "ctx_init": "a photo of a", "official_prompt_depth": 2, "our_prompt_depth": 9,
                    "templates": TEMPLATES, "text_weight": WEIGHTS["TEXT_LOSS_WEIGHT"],
                    "image_weight": WEIGHTS["IMAGE_LOSS_WEIGHT"], "gpa": GPA,
                    "pixels": "raw [0, 1] (mean 0, std 1)", "prompt_seed": 1},
        "follows": "the official code as is (vision prompts appended before ln_pre), in fp32, with ours' templates",
    })


if __name__ == "__main__":
    main()
