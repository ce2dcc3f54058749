"""Prompt tuning at the input only: the shallow counterpart of OFA-PT's deep prompts on the sequence-to-sequence
CoCa.

Where the prompts go, and why there: OFA's input prompt tuning (Lester et al.'s prompt tuning, OFA-PT's depth-1
ablation) prepends learned embeddings to the *encoder's* input sequence. CoCa's encoder is its image tower, so the
`length` learned tokens are inserted into the image encoder's token sequence right after the class token, before
the first block (VPT-shallow's placement; no position embedding added), and travel through every frozen layer as
ordinary tokens: the attention pooler, and so the decoder's cross-attention, reads them. The text decoder's input
is left alone: open_clip's text tower adds position embeddings and CoCa's appended-CLS mask sized to the token
ids inside its own forward, so a prepended embedding would need a copy of that forward.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.multimodal.methods import Seq2SeqMethodBase, freeze, register_seq2seq_method
from strategies._vit_prompting import insert_prompts, patch_size_of, xavier_prompt_bound


@register_seq2seq_method("input_prompt")
class InputPrompt(Seq2SeqMethodBase):
    """`length` learned prompt tokens at the image encoder's input (depth 1 only; see the module docstring),
    initialised uniformly within VPT's Xavier bound. Trains: the prompt tokens. Freezes: the whole backbone."""

    default_lr = 0.1  # the v5 default suite's hand-picked rate; `promptshift tune` searches x0.3 / x1 / x3

    def __init__(self, length: int = 8) -> None:
        if length < 1:
            raise ValueError(f"input_prompt: length must be >= 1, got {length}")
        super().__init__(length=length)
        self.prompts: nn.Parameter | None = None
        self._hook = None

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        freeze(backbone)
        visual = backbone.visual
        bound = xavier_prompt_bound(patch_size_of(visual), visual.embed_dim)
        self.prompts = nn.Parameter(torch.empty(self._params["length"], visual.embed_dim).uniform_(-bound, bound))
        prefix = visual.num_prefix_tokens

        def insert(_block: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return (insert_prompts(args[0], self.prompts, prefix), *args[1:])

        self._hook = visual.blocks[0].register_forward_pre_hook(insert)
        return [self.prompts]
