"""Text side helpers shared by the model loader and the pretraining recipe: the compact tokenizer of the
embedded CLIP/CoCa models and how a class name reads inside a prompt."""
from __future__ import annotations

from typing import Sequence

import torch


class CompactTokenizer:
    """open_clip's BPE tokenizer with ids remapped onto a small vocabulary.

    The embedded CLIP models only ever read captions made of a few hundred BPE tokens; a full 49k-row embedding
    table would make a 1 MB model weigh 15 MB. Ids: 0 pad, 1 unknown, 2.. the vocabulary, then start and end of
    text, end last so that open_clip's argmax pooling still finds it.
    """

    def __init__(self, vocab: Sequence[str], context_length: int) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.bpe = SimpleTokenizer(context_length=context_length)
        self.vocab = list(vocab)
        self.context_length = context_length
        self._to_compact = {self.bpe.encoder[tok]: i + 2 for i, tok in enumerate(self.vocab)}
        self.sot_token_id = len(self.vocab) + 2
        self.eot_token_id = len(self.vocab) + 3
        self.vocab_size = len(self.vocab) + 4

    @staticmethod
    def build_vocab(texts: Sequence[str]) -> list[str]:
        """Every BPE token the given texts use, sorted (so the vocabulary is a pure function of the texts)."""
        from open_clip.tokenizer import SimpleTokenizer

        bpe = SimpleTokenizer()
        ids = {i for text in texts for i in bpe.encode(text)}
        return sorted(bpe.decoder[i] for i in ids)

    def encode(self, text: str) -> list[int]:
        return [self._to_compact.get(i, 1) for i in self.bpe.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Compact ids -> text, stopping at the end-of-text token (pads, start and unknown ids dropped)."""
        to_bpe = {compact: bpe_id for bpe_id, compact in self._to_compact.items()}
        out = []
        for i in ids:
            if i == self.eot_token_id:
                break
            if i in to_bpe:
                out.append(to_bpe[i])
        return self.bpe.decode(out).strip()

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        return token_rows(self, texts, context_length)


def token_rows(tokenizer, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
    """open_clip's tokenizer call for a tokenizer with `encode`, `sot_token_id`, `eot_token_id` and
    `context_length`: one zero-padded row per text, start token, the text cut to fit, end token."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    length = context_length or tokenizer.context_length
    out = torch.zeros(len(texts), length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [tokenizer.sot_token_id] + tokenizer.encode(text)[: length - 2] + [tokenizer.eot_token_id]
        out[row, : len(ids)] = torch.tensor(ids)
    return out


def prompt_name(name: str) -> str:
    """A class id as it reads inside a text prompt.

    Underscores become spaces, the rule of CoOp's and zero-shot CLIP's prompt learners and DAPL
    (`name.replace("_", " ")`): folder and split-file names such as `american_bulldog`, `Apply_Eye_Makeup` or
    `The_Eiffel_Tower` keep their spelling as the class id in records, and read "american bulldog" in a prompt.
    The embedded glyph names carry a lower-case article that the templates already supply ("the digit 7" ->
    "digit 7"); a capitalised "The" is part of a proper name ("The Eiffel Tower") and stays.
    """
    name = name.replace("_", " ")
    return name[4:] if name.startswith("the ") else name
