"""open_clip's BPE tokenizer (CLIP's vocabulary, which CoCa reads) behind the interface of the sequence-to-sequence
code (bench.multimodal.seq2seq, written against bench.multimodal.vocab.SceneTokenizer): `prefix(instruction)`,
`encode`, `decode`, the start / end / separator / pad ids, `context_length`, `vocab_size` and the tokenizer call.

Ids are CoCa's own: 49408 pieces, start 49406, end 49407, padding 0 as open_clip pads (id 0 is also the piece "!"
inside a word, e.g. in "!!"; the decoder is never allowed to write it, as `_next_logp` bans the pad id, which costs
OFA's tasks nothing).

CLIP's pre-tokenizer loses where spaces were next to digits and punctuation: every digit is a word of its own
("10" and "1 0" are the same ids) and punctuation is split off ("surfboard." -> "surfboard ."). `decode` writes text
back the usual way (digits together, punctuation attached to the word before, hyphens, slashes and a colon between
digits joined), so that a VQA answer "10" or "10:30" and a caption's "t-shirt" read as the references write them.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import torch

from bench.models.text import token_rows

__all__ = ["ANSWER_PIECE", "BpeSeq2SeqTokenizer"]

# The separator between the instruction and the answer (`<start> instruction | answer <end>`): it must be one id of
# CoCa's existing vocabulary, since a new id would need a new row in the pretrained embedding and output tables. "|"
# is one piece, separates a title from what follows in the web alt-texts CoCa was pretrained on, and never occurs in
# a COCO caption, a VQAv2 answer or yes / no / maybe, so banning it from generation (`_next_logp`) costs no answer.
ANSWER_PIECE = "|"
CONTEXT_LENGTH = 76  # open_clip's CoCa text context (77 with the appended CLS token)
_LOCATION = re.compile(r"<bin_\d+>")
_DETOKENIZE = ((re.compile(r"(?<=\d) (?=\d)"), ""),  # digits are words of their own in CLIP's BPE
               (re.compile(r" ([.,!?;%)]|'(?:s|t|re|ve|m|ll|d)\b)"), r"\1"),  # attached to the word before
               (re.compile(r"(\() "), r"\1"),
               (re.compile(r" ([-/]) "), r"\1"),
               (re.compile(r"(?<=\d) : (?=\d)"), ":"))


@lru_cache(maxsize=1)
def _simple_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()  # reads the 49152 merges once per process


class BpeSeq2SeqTokenizer:
    """CLIP's BPE with `SceneTokenizer`'s interface (see the module docstring)."""

    def __init__(self, context_length: int = CONTEXT_LENGTH) -> None:
        self._bpe = _simple_tokenizer()
        self.context_length = context_length
        self.vocab_size: int = self._bpe.vocab_size
        self.sot_token_id: int = self._bpe.sot_token_id
        self.eot_token_id: int = self._bpe.eot_token_id
        self.pad_id = 0
        separator = self._bpe.encode(ANSWER_PIECE)
        if len(separator) != 1:
            raise ValueError(f"the answer separator {ANSWER_PIECE!r} is {len(separator)} BPE pieces, not one")
        self.answer_id: int = separator[0]

    def encode(self, text: str) -> list[int]:
        """BPE ids of `text` (lower-cased, as CLIP's tokenizer cleans it). OFA's location tokens are refused: CLIP's
        vocabulary has none, and spelling "<bin_12>" as five pieces would be another task."""
        if _LOCATION.search(text):
            raise ValueError(f"{text!r} holds OFA location tokens (<bin_i>), which open_clip CoCa's BPE vocabulary "
                             f"does not have: referring expressions (grounding) cannot run on it")
        return self._bpe.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text up to the end token (pads, start and separator dropped), written back as text is written."""
        kept = []
        for i in ids:
            if i == self.eot_token_id:
                break
            if i not in (self.pad_id, self.sot_token_id, self.answer_id):
                kept.append(int(i))
        text = " ".join(self._bpe.decode(kept).split())
        for pattern, replacement in _DETOKENIZE:
            text = pattern.sub(replacement, text)
        return text

    def prefix(self, instruction: str) -> list[int]:
        """Start token, the instruction, the answer separator: what generation continues from."""
        return [self.sot_token_id] + self.encode(instruction) + [self.answer_id]

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        return token_rows(self, texts, context_length)
