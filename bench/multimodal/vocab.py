"""A word-level tokenizer for the embedded multimodal scenes' language (the grammar's words, OFA's location tokens).

The embedded CoCa checkpoint (`coca_glyph_tiny`) reads a closed vocabulary of 95 BPE pieces built from glyph
class captions: it has no word for a colour, "yes", "maybe", a question word or a location token, and a context of
20 tokens, shorter than OFA's entailment instruction. A model for the scene tasks therefore needs its own
vocabulary; this one is a pure function of the grammar (words collected from generated scenes of every task kind,
sorted) plus `<bin_0>` .. `<bin_{bins-1}>`. Ids follow `bench.models.text.CompactTokenizer`: 0 pad, 1 unknown,
2.. the words, then start and end of text, then the answer separator.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from bench.models.text import token_rows

__all__ = ["ANSWER", "SceneTokenizer", "scene_vocabulary"]

ANSWER = "<answer>"  # separates the instruction (OFA's encoder input) from the target the decoder writes
_WORD = re.compile(r"<bin_\d+>|<answer>|[a-z0-9]+|[^\sa-z0-9]")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def scene_vocabulary(scenes: int = 24, bins: int = 1000) -> list[str]:
    """The grammar's words, sorted, then the location tokens: every class name, character, colour, number and
    phrase the grammar draws from, plus the template words of every task kind's examples on `scenes` generated
    scenes (pretraining faces)."""
    from scenarios.multimodal import annotations
    from scenarios.multimodal.scenes import COLOURS, SCENE_CLASSES, char_answer, object_name, render_scene
    from scenarios.multimodal.tasks import TASK_KINDS, scene_examples

    texts = [object_name(c) + " " + char_answer(c) for c in SCENE_CLASSES]
    texts += [*COLOURS, *annotations.NUMBER_WORDS, "0 1 2 3 4 5 6 7 8 9", *annotations.UNOBSERVABLE,
              *annotations.STYLE_PHRASES.values(), *annotations.ENTAILMENT_LABELS]
    for index in range(scenes):
        scene = render_scene(0, "train", index, fonts="pretrain")
        texts += annotations.alt_text_captions(scene)  # what the pretraining writes
        for kind in TASK_KINDS:
            for ex in scene_examples(scene, kind, np.random.default_rng(index), per_scene=50):
                texts += [ex.instruction, ex.target, *ex.references]
    words = {w for text in texts for w in _words(text) if not w.startswith("<bin_")}
    return sorted(words) + [f"<bin_{i}>" for i in range(bins)]


class SceneTokenizer:
    """Word ids for the scene language, with CompactTokenizer's conventions (see the module docstring)."""

    def __init__(self, vocab: Sequence[str], context_length: int) -> None:
        self.vocab = list(vocab)
        self.context_length = context_length
        self._ids = {w: i + 2 for i, w in enumerate(self.vocab)}
        self.pad_id, self.unk_id = 0, 1
        self.sot_token_id = len(self.vocab) + 2
        self.eot_token_id = len(self.vocab) + 3
        self.answer_id = len(self.vocab) + 4
        self.vocab_size = len(self.vocab) + 5
        self._words = {i: w for w, i in self._ids.items()}

    def encode(self, text: str) -> list[int]:
        return [self.answer_id if w == ANSWER else self._ids.get(w, self.unk_id) for w in _words(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text up to the end token (pads, start, separator and unknown ids dropped)."""
        out = []
        for i in ids:
            if i == self.eot_token_id:
                break
            if i in self._words:
                out.append(self._words[i])
        return " ".join(out)

    def prefix(self, instruction: str) -> list[int]:
        """Start token, the instruction, the answer separator: what generation continues from."""
        return [self.sot_token_id] + self.encode(instruction) + [self.answer_id]

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        return token_rows(self, texts, context_length)
