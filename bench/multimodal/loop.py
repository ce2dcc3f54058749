"""Train a CoCa on OFA-format examples with any registered method (bench.multimodal.methods: fine-tuning, BitFit,
deep or input prompts, adapters, LoRA) and score it with each task kind's official metric: captioning BLEU-4 /
CIDEr-D, VQA accuracy, entailment accuracy (the three answers scored, the likeliest taken), referring-expression
accuracy at IoU >= 0.5 (the box parsed from the generated location tokens; no box counts as a miss). Generated
metrics carry their `DecodeSettings`.

The benchmark harness routes these kinds through its cells, records and leaderboards by calling `train` and
`evaluate` with a method object (`build_method(name, **params)`, attached once to the backbone).
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch

from bench.eval.caption_metrics import caption_scores
from bench.eval.understanding_metrics import grounding_accuracy
from bench.eval.vqa_metrics import vqa_accuracy
from bench.models.backbones import CocaBackbone
from bench.multimodal.methods import Seq2SeqMethod
from bench.multimodal.seq2seq import DecodeSettings, beam_decode, candidate_scores, encode_examples, sequence_loss
from scenarios.multimodal.tasks import ENTAILMENT_TARGETS, Example, parse_location_tokens

__all__ = ["PRIMARY_METRIC", "TrainSettings", "active", "evaluate", "example_batch_loss", "pixels_of", "train"]

# The headline metric of each task kind, as `evaluate` names it (captioning also reports BLEU-4 and the others).
PRIMARY_METRIC: dict[str, str] = {"caption": "cider", "vqa": "vqa_accuracy", "entailment": "accuracy",
                                  "grounding": "grounding_accuracy"}
_LABEL_OF_ANSWER = {answer: label for label, answer in ENTAILMENT_TARGETS.items()}


def pixels_of(examples: Sequence[Example]) -> torch.Tensor:
    """`(B, 3, H, W)` float pixels in [0, 1]."""
    return torch.from_numpy(np.stack([e.image for e in examples])).permute(0, 3, 1, 2).float() / 255.0


@dataclass(frozen=True)
class TrainSettings:
    """How a method is trained: AdamW (no weight decay) for `steps` seeded mini-batches of `batch_size`."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"steps >= 0, batch_size >= 1 and lr > 0 needed, got {self}")

    def record(self) -> dict:
        return asdict(self)


def active(method: Seq2SeqMethod | None) -> AbstractContextManager:
    """The method's context for one forward pass (none: the bare backbone)."""
    return method.active() if method is not None else nullcontext()


def example_batch_loss(backbone: CocaBackbone, examples: Sequence[Example], pixels: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Teacher-forced sequence loss of the examples' targets (`pixels`: other images than the examples' own, e.g.
    attacked ones). Call it inside the method's `active()`."""
    device = _device(backbone)
    ids, mask = encode_examples(backbone.tokenizer, [e.instruction for e in examples], [e.target for e in examples])
    pixels = pixels_of(examples) if pixels is None else pixels
    return sequence_loss(backbone, pixels.to(device), ids.to(device), mask.to(device))


def _device(backbone: CocaBackbone) -> torch.device:
    return next(backbone.parameters()).device


def train(backbone: CocaBackbone, examples: Sequence[Example], settings: TrainSettings, method: Seq2SeqMethod
          ) -> None:
    """Train `method` (attached to `backbone` beforehand) in place with AdamW on seeded mini-batches: only the
    parameters `method.attach` returned move."""
    if not examples:
        raise ValueError("no training examples")
    if not method.is_attached_to(backbone):
        raise ValueError(f"seq2seq method {method.name!r} is not attached to this backbone: call "
                         f"method.attach(backbone) first")
    torch.manual_seed(settings.seed)
    opt = torch.optim.AdamW(method.trainable_parameters(), lr=settings.lr, weight_decay=0.0)
    rng = np.random.default_rng(settings.seed)
    device = _device(backbone)
    backbone.train()
    for _ in range(settings.steps):
        batch = [examples[i] for i in rng.choice(len(examples), size=min(settings.batch_size, len(examples)),
                                                 replace=False)]
        with active(method):
            loss = example_batch_loss(backbone, batch, pixels_of(batch).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    backbone.eval()


@torch.no_grad()
def evaluate(backbone: CocaBackbone, examples: Sequence[Example], settings: DecodeSettings = DecodeSettings(),
             method: Seq2SeqMethod | None = None, pixels: torch.Tensor | None = None) -> dict:
    """The official metric(s) of the examples' task kind (all examples share one kind), with the decoding settings
    for the generated kinds and the predictions themselves. `pixels` `(N, 3, H, W)` in [0, 1] replace the
    examples' own images (attacked or corrupted copies)."""
    kinds = {e.kind for e in examples}
    if len(kinds) != 1:
        raise ValueError(f"evaluate one task kind at a time, got {sorted(kinds)}")
    kind = kinds.pop()
    backbone.eval()
    pixels = (pixels_of(examples) if pixels is None else pixels).to(_device(backbone))
    if pixels.shape[0] != len(examples):
        raise ValueError(f"{pixels.shape[0]} images for {len(examples)} examples")
    with active(method):
        if kind == "entailment":
            answers = list(ENTAILMENT_TARGETS.values())
            scores = candidate_scores(backbone, pixels, [e.instruction for e in examples], answers)
            preds = [answers[i] for i in scores.argmax(dim=1).tolist()]
            gold = [_LABEL_OF_ANSWER[e.target] for e in examples]
            correct = [_LABEL_OF_ANSWER[p] == g for p, g in zip(preds, gold)]
            return {"kind": kind, "accuracy": float(np.mean(correct)), "decoding": "candidate scoring",
                    "predictions": preds}
        preds = [beam_decode(backbone, pixels[i:i + 1], e.instruction, settings) for i, e in enumerate(examples)]
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
