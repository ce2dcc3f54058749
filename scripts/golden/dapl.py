"""Golden values for DAPL from the official code (LeapLabTHU/DAPrompt: trainers/dapl.py `CustomCLIP`,
`PromptLearner`, `TextEncoder` and the loss of `DAPL.forward_backward`, on OpenAI's `clip` package, which the
official README installs from openai/CLIP).

    python scripts/golden/dapl.py /path/to/DAPrompt /path/to/CLIP      # fetched snapshots (repository roots)

A tiny random CLIP (open_clip's CLIP with OpenAI's layout: QuickGELU, width 64 so that the official `build_model`
infers 1 head, 2 layers per tower, 16-pixel images in 8-pixel patches, the BPE vocabulary of which only the rows
the prompts use are non-zero) is loaded into OpenAI's CLIP by `clip.build_model`; the official `CustomCLIP` (4
domain-agnostic and 4 domain-specific tokens, domains "photo" (source) and "sketch" (target), prompts
"X.. {class} , a {domain} image..", the zero-shot "a photo of a {class}." appended for pseudo-labels) gives the
logits of 3 labelled source and 4 unlabelled target images, and the official `forward_backward` (run on a stand-in
trainer whose optimizer does nothing) the loss CE(source) + U * masked CE(target, zero-shot pseudo-labels at T,
kept where max probability >= TAU); recorded: the seed-drawn contexts, both logits, the pseudo-label mask, the
losses and the gradients of both contexts.
Patches to run offline: stub modules for `dassl.*` (the trainer registry and helpers; `compute_accuracy` only
feeds the printed summary); `Tensor.to` maps the CUDA device the prompt learner moves its zero-shot embeddings to
onto the CPU (while it is built); `Tensor.cuda` / `Module.cuda` -> CPU; the loss is in the official "amp" branch
(the only one that defines it): `torch.cuda.amp.autocast` is inactive without CUDA, so it runs in fp32, and the
gradient scaler is a stand-in that scales by 1; CLIP in fp32 with the exact fp32 weights reloaded after
`build_model`.
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
SOURCE, TARGET = "photo", "sketch"
CLIP_ARGS = dict(embed_dim=32, vision_cfg=dict(image_size=16, layers=2, width=64, patch_size=8, head_width=64),
                 text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=2), quick_gelu=True)
# T sharper than the official 1.0 so that the tiny CLIP keeps some target images and drops others at TAU 0.5
DAPL_CFG = dict(N_CTX=4, N_DMX=4, CSC=False, PREC="amp", T=0.5, TAU=0.5, U=1.0)


def stub_dassl() -> None:
    accuracy = lambda output, label: [torch.zeros(())]  # noqa: E731 (only printed by the official summary)
    modules = {"dassl": {}, "dassl.engine": {"TRAINER_REGISTRY": DASSL_REGISTRY, "TrainerXU": object},
               "dassl.metrics": {"compute_accuracy": accuracy},
               "dassl.utils": {k: None for k in ("MetricMeter", "AverageMeter", "load_pretrained_weights",
                                                 "load_checkpoint", "save_checkpoint")},
               "dassl.optim": {"build_optimizer": None, "build_lr_scheduler": None}}
    stub_modules(modules)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    clip_root = import_snapshot(sys.argv[2])
    cpu_only_cuda_patch()
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    stub_dassl()
    import open_clip
    from clip import clip
    import trainers.dapl as dapl

    torch.manual_seed(0)
    tiny = open_clip.model.CLIP(**CLIP_ARGS)
    n_tokens = DAPL_CFG["N_CTX"] + DAPL_CFG["N_DMX"]
    with torch.no_grad():
        for p in tiny.parameters():
            p.add_(0.05 * torch.randn_like(p))
        texts = [" ".join(["X"] * n_tokens) + f" {c} , a {d} image.." for d in (SOURCE, TARGET) for c in CLASSES]
        texts += [f"a photo of a {c}." for c in CLASSES]
        used = torch.unique(torch.cat([clip.tokenize(t) for t in texts]))
        keep = torch.zeros(49408, dtype=torch.bool)
        keep[used] = True
        tiny.token_embedding.weight[~keep] = 0  # only these rows matter: the fixture stores just them
    state = {k: v.clone() for k, v in tiny.state_dict().items() if k != "attn_mask"}
    official = clip.build_model({k: v.clone() for k, v in state.items()}).float()
    official.load_state_dict(state)
    official.eval()

    cfg = AttrDict(TRAINER=AttrDict(DAPL=AttrDict(DAPL_CFG)), INPUT=AttrDict(SIZE=(16, 16)),
                   DATASET=AttrDict(SOURCE_DOMAINS=[SOURCE], TARGET_DOMAINS=[TARGET]),
                   MODEL=AttrDict(BACKBONE=AttrDict(NAME="ViT-B/16")))
    to = torch.Tensor.to

    def cpu_to(self, *args, **kwargs):
        args = tuple(torch.device("cpu") if isinstance(a, torch.device) and a.type == "cuda" else a for a in args)
        return to(self, *args, **kwargs)

    torch.manual_seed(1)
    torch.Tensor.to = cpu_to  # type: ignore[method-assign]
    try:
        model = dapl.CustomCLIP(cfg, CLASSES, official)
    finally:
        torch.Tensor.to = to  # type: ignore[method-assign]
    for name, param in model.named_parameters():
        param.requires_grad_("prompt_learner" in name)
    images, y, target = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 1]), torch.rand(4, 3, 16, 16)
    model.train()
    with torch.no_grad():
        output_x, output_u = model(images), model(target)
    n_cls = len(CLASSES)
    probs = torch.softmax(output_u[:, -n_cls:] / DAPL_CFG["T"], dim=-1)
    mask = probs.max(dim=-1).values.ge(DAPL_CFG["TAU"])
    if mask.all() or not mask.any():
        raise SystemExit(f"pseudo-label mask {mask.tolist()} (max probabilities {probs.max(dim=-1).values.tolist()}): "
                         "pick a T and TAU that keep some target images, not all")

    noop = types.SimpleNamespace(zero_grad=lambda: None, step=lambda: None)
    scaler = types.SimpleNamespace(scale=lambda loss: loss, step=lambda optim: None, update=lambda: None)
    trainer = types.SimpleNamespace(model=model, optim=noop, scaler=scaler, cfg=cfg, n_cls=n_cls, device="cpu",
                                    update_lr=lambda: None)
    trainer.parse_batch_train = lambda bx, bu: dapl.DAPL.parse_batch_train(trainer, bx, bu)
    summary = dapl.DAPL.forward_backward(trainer, {"img": images, "label": y}, {"img": target})
    learner = model.prompt_learner
    tensors = {f"clip.{k}": v for k, v in state.items() if k != "token_embedding.weight"}
    tensors.update({"token_ids": used.float(), "token_rows": state["token_embedding.weight"][used],
                    "x": images, "y": y.float(), "target_x": target, "logits_x": output_x, "logits_u": output_u,
                    "mask": mask.float(), "loss": torch.tensor([summary["loss"]]),
                    "loss_x": torch.tensor([summary["loss_x"]]), "loss_u": torch.tensor([summary["loss_u"]]),
                    "init.ctx": learner.ctx, "init.domain": learner.domain_vectors,
                    "grad.ctx": learner.ctx.grad, "grad.domain": learner.domain_vectors.grad})
    save_fixture("dapl", tensors, {
        "method": "dapl", "repository": "LeapLabTHU/DAPrompt", "commit": snapshot_commit(root),
        "clip_repository": "openai/CLIP", "clip_commit": snapshot_commit(clip_root),
        "official": "trainers/dapl.py CustomCLIP (PromptLearner, TextEncoder) and DAPL.forward_backward's loss "
                    "(the amp branch, the only one that computes it); openai/CLIP build_model and tokenize",
        "patches": ["stub dassl.* modules (unused by CustomCLIP and the loss; compute_accuracy only printed)",
                    "Tensor.to: the CUDA device -> CPU while the prompt learner is built",
                    "Tensor.cuda / Module.cuda -> CPU",
                    "torch.cuda.amp.autocast inactive without CUDA (fp32); gradient scaler: a stand-in scaling by 1",
                    "forward_backward run on a stand-in trainer whose optimizer does nothing (loss and gradients)",
                    "fp32 throughout, weights reloaded after build_model's fp16 cast"],
        "setting": {"clip": CLIP_ARGS, "classes": CLASSES, "source": SOURCE, "target": TARGET,
                    "n_ctx": DAPL_CFG["N_CTX"], "n_dmx": DAPL_CFG["N_DMX"], "temperature": DAPL_CFG["T"],
                    "tau": DAPL_CFG["TAU"], "target_weight": DAPL_CFG["U"], "domain_names_in_prompt": True,
                    "pixels": "raw [0, 1] (mean 0, std 1)", "prompt_seed": 1},
        "follows": "the official code as is (CE within each domain's prompts), in fp32",
    })


if __name__ == "__main__":
    main()
