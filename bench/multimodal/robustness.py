"""Robustness of a trained sequence-to-sequence method: the task's official metric under L-inf attacks on the image
pixels, and under common corruptions.

- Threat model as for classification (bench.eval.attacks / bench.eval.robustness): pixels in [0, 1], L-inf budgets
  written as in suites ("8/255", `RobustnessConfig.eps`), FGSM and PGD with PGD's step `pgd_step_fraction * eps`
  and a seeded uniform random start; every adversarial batch is checked against its budget (`check_budget`).
- The attacks ascend the task's own loss: for the generated kinds (caption, VQA, grounding) the teacher-forced
  cross-entropy of the example's target (`sequence_losses`, summed over the target tokens); for entailment the
  candidate-scoring loss, cross-entropy of the gold answer among the three candidates' log-likelihoods.
- Reported: the kind's official metric (`PRIMARY_METRIC`; captioning also BLEU-4) on the attacked images, decoded
  with the same `DecodeSettings` as the clean evaluation, and the mean task loss per example clean and attacked.
  Unlike classification's robust accuracy the metric is the plain metric on each budget's attacked images (CIDEr is
  a corpus-level score: there is no per-image "correct under every smaller budget"), so it is not forced to fall
  with the budget.
- Corruptions: the classification suite's ImageNet-C corruptions (`bench.eval.robustness.corrupt_images`, the same
  per-image seeds) on the scenes' uint8 images; the metric per corruption (mean over severities) and their mean.
- The whole prompted model is attacked: every forward pass runs inside the method's `active()`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.seeding import derive_seed
from bench.eval.attacks import check_budget, fgsm, project
from bench.eval.budgets import parse_budget
from bench.eval.robustness_config import RobustnessConfig
from bench.models.backbones import CocaBackbone
from bench.multimodal.loop import PRIMARY_METRIC, active, evaluate, pixels_of
from bench.multimodal.methods import Seq2SeqMethod
from bench.multimodal.seq2seq import DecodeSettings, candidate_log_likelihoods, encode_examples, sequence_losses
from scenarios.multimodal.tasks import ENTAILMENT_TARGETS, Example

__all__ = ["attack_pixels", "corruption_metrics", "generation_robustness", "task_losses"]

_CANDIDATES = list(ENTAILMENT_TARGETS.values())


def task_losses(backbone: CocaBackbone, examples: Sequence[Example], pixels: torch.Tensor) -> torch.Tensor:
    """`(B,)` the task's own loss of each example on `pixels` (call inside the method's `active()`)."""
    kinds = {e.kind for e in examples}
    if len(kinds) != 1:
        raise ValueError(f"attack one task kind at a time, got {sorted(kinds)}")
    instructions = [e.instruction for e in examples]
    if kinds.pop() == "entailment":
        scores = candidate_log_likelihoods(backbone, pixels, instructions, _CANDIDATES)
        gold = torch.tensor([_CANDIDATES.index(e.target) for e in examples], device=pixels.device)
        return F.cross_entropy(scores.float(), gold, reduction="none")
    ids, mask = encode_examples(backbone.tokenizer, instructions, [e.target for e in examples])
    return sequence_losses(backbone, pixels, ids.to(pixels.device), mask.to(pixels.device))


def _loss_gradient(backbone: CocaBackbone, examples: Sequence[Example], x: torch.Tensor,
                   method: Seq2SeqMethod | None) -> torch.Tensor:
    """Gradient of the summed task loss with respect to the pixels (a sum, so that an example's gradient does not
    shrink with the batch, as in bench.eval.attacks.input_gradient). Only the pixels get gradients."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), active(method):
        (grad,) = torch.autograd.grad(task_losses(backbone, examples, x).sum(), x)
    return grad


def attack_pixels(backbone: CocaBackbone, examples: Sequence[Example], x: torch.Tensor, attack: str, eps: float,
                  method: Seq2SeqMethod | None = None, steps: int = 10, step_fraction: float | None = None,
                  random_start: bool = True, seed: int = 0) -> torch.Tensor:
    """Adversarial copies of the pixels `x` `(B, 3, H, W)` in [0, 1] within `eps` (L-inf) that ascend the task's
    loss: "fgsm" (one signed step of eps) or "pgd" (`steps` signed steps of `step_fraction * eps`, default
    2.5 / steps as in RobustnessConfig, from a uniform start drawn from `seed`, projected after each step)."""
    backbone.eval()
    x = x.detach()
    if attack == "fgsm":
        return fgsm(None, x, None, eps, sign=_loss_gradient(backbone, examples, x, method).sign())  # type: ignore
    if attack != "pgd":
        raise ValueError(f"unknown attack {attack!r}; valid: fgsm, pgd")
    x_adv = x.clone()
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype).to(x.device)
        x_adv = project(x + (2 * noise - 1) * eps, x, eps)
    step = (2.5 / steps if step_fraction is None else step_fraction) * eps
    for _ in range(steps):
        x_adv = project(x_adv + step * _loss_gradient(backbone, examples, x_adv, method).sign(), x, eps).detach()
    check_budget(x_adv, x, eps)
    return x_adv


@torch.no_grad()
def _mean_loss(backbone: CocaBackbone, examples: Sequence[Example], x: torch.Tensor,
               method: Seq2SeqMethod | None) -> float:
    with active(method):
        return float(task_losses(backbone, examples, x).mean())


def _scores(result: dict[str, Any], kind: str) -> dict[str, float]:
    keys = ("cider", "bleu4") if kind == "caption" else (PRIMARY_METRIC[kind],)
    return {k: result[k] for k in keys}


def subset(examples: Sequence[Example], size: int, seed: int) -> list[Example]:
    """A fixed seeded subset (in order) of at most `size` examples."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return [examples[i] for i in order.tolist()]


def corruption_metrics(backbone: CocaBackbone, examples: Sequence[Example], cfg: RobustnessConfig,
                       decode: DecodeSettings, method: Seq2SeqMethod | None = None, seed: int = 0) -> dict[str, Any]:
    """The kind's primary metric per corruption (mean over `cfg.severities`) and their mean."""
    from bench.eval.robustness import corrupt_images

    kind = examples[0].kind
    images = np.stack([e.image for e in examples])
    per: dict[str, float] = {}
    for name in cfg.corruption_names:
        values = []
        for severity in cfg.severities:
            corrupted = corrupt_images(images, name, severity, derive_seed(seed, "corruptions"))
            pixels = torch.from_numpy(np.ascontiguousarray(corrupted)).permute(0, 3, 1, 2).float() / 255.0
            values.append(evaluate(backbone, examples, decode, method, pixels=pixels)[PRIMARY_METRIC[kind]])
        per[name] = float(np.mean(values))
    return {"metric": PRIMARY_METRIC[kind], "mean": float(np.mean(list(per.values()))), "per_corruption": per}


def generation_robustness(backbone: CocaBackbone, examples: Sequence[Example], cfg: RobustnessConfig | dict | None,
                          decode: DecodeSettings = DecodeSettings(), method: Seq2SeqMethod | None = None,
                          seed: int = 0) -> dict[str, Any]:
    """Clean and attacked metrics of one task kind on a fixed seeded subset of `cfg.subset_size` examples: per
    budget of `cfg.eps`, per attack (FGSM, PGD as enabled), the metric(s) and the mean task loss; corruptions if
    enabled. AutoAttack is classification-only and is not run here (reported as such)."""
    cfg = cfg if isinstance(cfg, RobustnessConfig) else RobustnessConfig.from_dict(cfg)
    chosen = subset(examples, cfg.subset_size, derive_seed(seed, "subset"))
    if not chosen:
        raise ValueError("no examples to attack")
    kind = chosen[0].kind
    clean_x = pixels_of(chosen).to(next(backbone.parameters()).device)
    clean = evaluate(backbone, chosen, decode, method)
    decoding = clean["decoding"] if kind == "entailment" else decode.record()
    out: dict[str, Any] = {"kind": kind, "metric": PRIMARY_METRIC[kind], "subset_size": len(chosen),
                           "decoding": decoding, "autoattack": "not run: classification only",
                           "clean": {**_scores(clean, kind), "loss": _mean_loss(backbone, chosen, clean_x, method)}}
    attacks = [a for a, on in (("fgsm", cfg.fgsm), ("pgd", cfg.pgd)) if on]
    for attack in attacks:
        rows = {}
        for budget in cfg.eps:
            eps = parse_budget(budget)
            adv = []
            for start in range(0, len(chosen), cfg.batch_size):
                part = chosen[start:start + cfg.batch_size]
                adv.append(attack_pixels(backbone, part, clean_x[start:start + cfg.batch_size], attack, eps, method,
                                         cfg.pgd_steps, cfg.pgd_step_fraction, cfg.pgd_random_start,
                                         derive_seed(seed, "pgd", budget, start)))
            x_adv = torch.cat(adv)
            result = evaluate(backbone, chosen, decode, method, pixels=x_adv)
            rows[budget] = {**_scores(result, kind), "loss": _mean_loss(backbone, chosen, x_adv, method)}
        out[attack] = rows
    if cfg.corruptions:
        out["corruptions"] = corruption_metrics(backbone, chosen, cfg, decode, method, derive_seed(seed, "corrupt"))
    return out
