"""Train a CoCa on OFA-format examples (full fine-tuning or deep prompts) and score it with each task kind's
official metric: captioning BLEU-4 / CIDEr-D, VQA accuracy, entailment accuracy (the three answers scored, the
likeliest taken), referring-expression accuracy at IoU >= 0.5 (the box parsed from the generated location tokens;
no box counts as a miss). Generated metrics carry their `DecodeSettings`.

A stand-alone loop for now: the benchmark harness (bench/train/harness.py) scores classifiers, and routing these
kinds through it, its records and leaderboards is the next step (see the report of issue 24).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.eval.caption_metrics import caption_scores
from bench.eval.understanding_metrics import grounding_accuracy
from bench.eval.vqa_metrics import vqa_accuracy
from bench.models.backbones import CocaBackbone
from bench.multimodal.seq2seq import (DecodeSettings, DeepPrompts, beam_decode, candidate_scores, encode_examples,
                                      sequence_loss)
from scenarios.multimodal.tasks import ENTAILMENT_TARGETS, Example, parse_location_tokens

__all__ = ["METHODS", "TrainSettings", "evaluate", "pixels_of", "train"]

METHODS = ("finetune", "deep_prompt", "bitfit")
_LABEL_OF_ANSWER = {answer: label for label, answer in ENTAILMENT_TARGETS.items()}


def pixels_of(examples: Sequence[Example]) -> torch.Tensor:
    """`(B, 3, H, W)` float pixels in [0, 1]."""
    return torch.from_numpy(np.stack([e.image for e in examples])).permute(0, 3, 1, 2).float() / 255.0


@dataclass(frozen=True)
class TrainSettings:
    method: str = "finetune"
    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    prompt_length: int = 8
    prompt_depth: int = 0
    reparam: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")


def train(backbone: CocaBackbone, examples: Sequence[Example], settings: TrainSettings) -> DeepPrompts | None:
    """Train in place (`finetune`: every weight; `bitfit`: the bias terms only; `deep_prompt`: only the prompts,
    the model frozen) with AdamW on seeded mini-batches; returns the prompts (None otherwise)."""
    if not examples:
        raise ValueError("no training examples")
    torch.manual_seed(settings.seed)
    prompts = None
    if settings.method == "deep_prompt":
        prompts = DeepPrompts(backbone, settings.prompt_length, settings.prompt_depth, settings.reparam)
        backbone.requires_grad_(False)
        params = list(prompts.parameters())
    elif settings.method == "bitfit":  # Ben Zaken et al., ACL 2022: every bias term, nothing else
        backbone.requires_grad_(False)
        params = [p for name, p in backbone.named_parameters() if name.endswith("bias")]
        for p in params:
            p.requires_grad_(True)
    else:
        params = list(backbone.parameters())
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    rng = np.random.default_rng(settings.seed)
    backbone.train()
    for _ in range(settings.steps):
        batch = [examples[i] for i in rng.choice(len(examples), size=min(settings.batch_size, len(examples)),
                                                 replace=False)]
        ids, mask = encode_examples(backbone.tokenizer, [e.instruction for e in batch], [e.target for e in batch])
        with _maybe(prompts):
            loss = sequence_loss(backbone, pixels_of(batch), ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    backbone.eval()
    return prompts


class _maybe:
    """The prompts' context when there are prompts, else nothing."""

    def __init__(self, prompts: DeepPrompts | None) -> None:
        self.ctx = prompts.active() if prompts is not None else None

    def __enter__(self):
        return self.ctx.__enter__() if self.ctx is not None else None

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc) if self.ctx is not None else False


@torch.no_grad()
def evaluate(backbone: CocaBackbone, examples: Sequence[Example], settings: DecodeSettings = DecodeSettings(),
             prompts: DeepPrompts | None = None) -> dict:
    """The official metric(s) of the examples' task kind (all examples share one kind), with the decoding settings
    for the generated kinds and the predictions themselves."""
    kinds = {e.kind for e in examples}
    if len(kinds) != 1:
        raise ValueError(f"evaluate one task kind at a time, got {sorted(kinds)}")
    kind = kinds.pop()
    backbone.eval()
    with _maybe(prompts):
        if kind == "entailment":
            answers = list(ENTAILMENT_TARGETS.values())
            scores = candidate_scores(backbone, pixels_of(examples), [e.instruction for e in examples], answers)
            preds = [answers[i] for i in scores.argmax(dim=1).tolist()]
            gold = [_LABEL_OF_ANSWER[e.target] for e in examples]
            correct = [_LABEL_OF_ANSWER[p] == g for p, g in zip(preds, gold)]
            return {"kind": kind, "accuracy": float(np.mean(correct)), "decoding": "candidate scoring",
                    "predictions": preds}
        preds = [beam_decode(backbone, pixels_of([e]), e.instruction, settings) for e in examples]
    out = {"kind": kind, **settings.record(), "predictions": preds}
    if kind == "caption":
        refs = {i: list(e.references) for i, e in enumerate(examples)}
        out.update(caption_scores(refs, {i: p for i, p in enumerate(preds)}))
    elif kind == "vqa":
        out["vqa_accuracy"] = vqa_accuracy({i: list(e.references) for i, e in enumerate(examples)},
                                           {i: p for i, p in enumerate(preds)})
    else:  # grounding: a missing or degenerate box is a miss (a 1-pixel box far outside the image)
        boxes = []
        for p in preds:
            box = parse_location_tokens(p)
            boxes.append(box if box and box[2] > box[0] and box[3] > box[1] else (-10.0, -10.0, -9.0, -9.0))
        out["grounding_accuracy"] = grounding_accuracy(boxes, [e.box for e in examples])
    return out
