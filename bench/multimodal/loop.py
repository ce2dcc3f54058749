"""Train a CoCa on OFA-format examples (full fine-tuning or deep prompts) and score it with each task kind's
official metric: captioning BLEU-4 / CIDEr-D, VQA accuracy, entailment accuracy (the three answers scored, the
likeliest taken), referring-expression accuracy at IoU >= 0.5 (the box parsed from the generated location tokens;
no box counts as a miss). Generated metrics carry their `DecodeSettings`.

A stand-alone loop for now: the benchmark harness (bench/train/harness.py) scores classifiers, and routing these
kinds through it, its records and leaderboards is the next step (see the report of issue 24).
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from bench.eval.caption_metrics import caption_scores
from bench.eval.understanding_metrics import grounding_accuracy
from bench.eval.vqa_metrics import vqa_accuracy
from bench.models.backbones import CocaBackbone
from bench.multimodal.seq2seq import DecodeSettings, beam_decode, candidate_scores, encode_examples, sequence_loss
from scenarios.multimodal.tasks import ENTAILMENT_TARGETS, Example, parse_location_tokens

__all__ = ["METHODS", "Prompts", "TrainSettings", "evaluate", "pixels_of", "train"]

METHODS = ("finetune", "bitfit", "deep_prompt")
_LABEL_OF_ANSWER = {answer: label for label, answer in ENTAILMENT_TARGETS.items()}


def pixels_of(examples: Sequence[Example]) -> torch.Tensor:
    """`(B, 3, H, W)` float pixels in [0, 1]."""
    return torch.from_numpy(np.stack([e.image for e in examples])).permute(0, 3, 1, 2).float() / 255.0


class Prompts(Protocol):
    """What the loop needs of a prompt method (e.g. strategies._seq2seq_prompts.DeepPrompts): its trainable
    parameters and a context that puts the prompts in place for a pass."""

    def parameters(self): ...

    def active(self) -> AbstractContextManager: ...


@dataclass(frozen=True)
class TrainSettings:
    method: str = "finetune"
    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")


def train(backbone: CocaBackbone, examples: Sequence[Example], settings: TrainSettings,
          prompts: Prompts | None = None) -> None:
    """Train in place with AdamW on seeded mini-batches: `finetune` every weight, `bitfit` the bias terms only
    (Ben Zaken et al., ACL 2022), `deep_prompt` only `prompts` (the model frozen)."""
    if not examples:
        raise ValueError("no training examples")
    if (settings.method == "deep_prompt") != (prompts is not None):
        raise ValueError("prompts are trained by method 'deep_prompt' and only by it")
    torch.manual_seed(settings.seed)
    if settings.method == "deep_prompt":
        backbone.requires_grad_(False)
        params = list(prompts.parameters())
    elif settings.method == "bitfit":
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
        with _active(prompts):
            loss = sequence_loss(backbone, pixels_of(batch), ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    backbone.eval()


def _active(prompts: Prompts | None) -> AbstractContextManager:
    return prompts.active() if prompts is not None else nullcontext()


@torch.no_grad()
def evaluate(backbone: CocaBackbone, examples: Sequence[Example], settings: DecodeSettings = DecodeSettings(),
             prompts: Prompts | None = None) -> dict:
    """The official metric(s) of the examples' task kind (all examples share one kind), with the decoding settings
    for the generated kinds and the predictions themselves."""
    kinds = {e.kind for e in examples}
    if len(kinds) != 1:
        raise ValueError(f"evaluate one task kind at a time, got {sorted(kinds)}")
    kind = kinds.pop()
    backbone.eval()
    with _active(prompts):
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
