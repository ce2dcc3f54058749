"""Scenes turned into sequence-to-sequence examples in OFA's format: a task instruction as the text input and the
answer as the target text (Wang et al., OFA, ICML 2022; the instructions are those of OFA's data loaders).

| kind | instruction | target | scored by |
|---|---|---|---|
| caption | what does the image describe? | a reference caption | BLEU-4, CIDEr-D over all references |
| vqa | the question | the answer | VQA accuracy over the human answers |
| entailment | can image and text1 " premise " imply text2 " hypothesis "? | yes / no / maybe | accuracy |
| grounding | which region does the text " expression " describe? | four location tokens | IoU >= 0.5 |

OFA writes a box as four location tokens "<bin_i>", i = round(coordinate / image size x (bins - 1)), x1 y1 x2 y2;
`location_tokens` and `parse_location_tokens` convert both ways. SNLI-VE's premise is a caption of the image from
another corpus (Flickr30k's): here the scene's first caption in the pretraining corpus's grammar
(`annotations.alt_text_captions`), not one of the captioning task's references.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from scenarios.multimodal import annotations
from scenarios.multimodal.scenes import SCENE_SIZE, Scene

__all__ = ["ENTAILMENT_TARGETS", "TASK_KINDS", "Example", "location_tokens", "parse_location_tokens",
           "scene_examples"]

TASK_KINDS: tuple[str, ...] = ("caption", "vqa", "entailment", "grounding")  # index seeds a kind: append only
ENTAILMENT_TARGETS: dict[str, str] = {"entailment": "yes", "contradiction": "no", "neutral": "maybe"}  # OFA's
NUM_BINS = 1000  # OFA's default number of location bins

CAPTION_INSTRUCTION = "what does the image describe?"
ENTAILMENT_INSTRUCTION = 'can image and text1 " {premise} " imply text2 " {hypothesis} "?'
GROUNDING_INSTRUCTION = 'which region does the text " {expression} " describe?'


@dataclass(frozen=True)
class Example:
    """One image-text example. `references` holds what the metric compares against (the captions; the human
    answers; the gold label; the box's location tokens), `box` the target box of a grounding example."""

    kind: str
    scene_id: str
    image: np.ndarray
    instruction: str
    target: str
    references: tuple[str, ...]
    box: tuple[int, int, int, int] | None = None


def location_tokens(box: tuple[float, float, float, float], width: int = SCENE_SIZE, height: int | None = None,
                    bins: int = NUM_BINS) -> str:
    """A box (x1, y1, x2, y2) in pixels of a `width` x `height` image (square if no height) as OFA's four
    location tokens (each axis scaled by its own size, as OFA resizes images to a square)."""
    height = width if height is None else height
    scales = (width, height, width, height)
    return " ".join(f"<bin_{int(round(v / s * (bins - 1)))}>" for v, s in zip(box, scales))


_BIN = re.compile(r"<bin_(\d+)>")


def parse_location_tokens(text: str, width: int = SCENE_SIZE, height: int | None = None, bins: int = NUM_BINS
                          ) -> tuple[float, float, float, float] | None:
    """The box written by the first four location tokens of `text` in pixels of a `width` x `height` image, or
    None if it holds fewer than four valid ones."""
    height = width if height is None else height
    found = [int(v) for v in _BIN.findall(text)][:4]
    if len(found) < 4 or max(found) >= bins:
        return None
    x1, y1, x2, y2 = (v / (bins - 1) * s for v, s in zip(found, (width, height, width, height)))
    return (x1, y1, x2, y2)


def scene_examples(scene: Scene, kind: str, rng: np.random.Generator, per_scene: int = 3) -> list[Example]:
    """Up to `per_scene` examples of `kind` from one scene (captioning always gives one: its target is a reference
    drawn with `rng`, scored against all five)."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}; valid: {', '.join(TASK_KINDS)}")
    if per_scene < 1:
        raise ValueError(f"per_scene must be >= 1, got {per_scene}")
    make = lambda instruction, target, references, box=None: Example(  # noqa: E731
        kind, scene.scene_id, scene.image, instruction, target, tuple(references), box)
    if kind == "caption":
        refs = annotations.captions(scene)
        return [make(CAPTION_INSTRUCTION, refs[int(rng.integers(len(refs)))], refs)]
    if kind == "vqa":
        qas = annotations.questions(scene)
        picked = rng.choice(len(qas), size=min(per_scene, len(qas)), replace=False)
        return [make(qas[i].question, qas[i].answer, qas[i].answers) for i in sorted(picked)]
    if kind == "entailment":
        hyps = annotations.hypotheses(scene, rng)[:per_scene]
        premise = annotations.alt_text_captions(scene)[0].rstrip(".")
        return [make(ENTAILMENT_INSTRUCTION.format(premise=premise, hypothesis=h.text.rstrip(".")),
                     ENTAILMENT_TARGETS[h.label], (h.label,)) for h in hyps]
    exprs = annotations.referring_expressions(scene)
    picked = rng.choice(len(exprs), size=min(per_scene, len(exprs)), replace=False)
    return [make(GROUNDING_INSTRUCTION.format(expression=exprs[i].text), location_tokens(exprs[i].box),
                 (location_tokens(exprs[i].box),), exprs[i].box) for i in sorted(picked)]
