"""OFA-style deep prompts on a CoCa used as a sequence-to-sequence model (bench.multimodal): learned prefix keys
and values in the self-attention of the image encoder's layers and of the text decoder's (unimodal then multimodal)
layers, the model frozen. Length, depth and reparameterisation as in `ofa_prompt_coca`, whose classification
version scores class names instead of generating answers."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from bench.models.backbones import CocaBackbone
from strategies._vit_prompting import PrefixGenerator, attach_prefix_attention, set_prefixes

__all__ = ["DeepPrompts"]


class DeepPrompts(torch.nn.Module):
    """OFA-style deep prompts on a CoCa: `length` prefix keys/values in the first `depth` layers (0: all) of the
    image encoder and of the text decoder (its unimodal then multimodal layers), optionally reparameterised."""

    def __init__(self, backbone: CocaBackbone, length: int = 8, depth: int = 0, reparam: bool = False,
                 init_std: float = 0.02) -> None:
        super().__init__()
        stacks = {"encoder": (list(backbone.visual.blocks), backbone.visual.embed_dim),
                  "decoder": (list(backbone.decoder_blocks), backbone.decoder_width)}
        self.wrappers, generators = {}, {}
        for name, (blocks, width) in stacks.items():
            if not 0 <= depth <= len(blocks):
                raise ValueError(f"depth {depth} outside the {len(blocks)} {name} layers (0 means every layer)")
            chosen = list(range(depth or len(blocks)))
            self.wrappers[name] = attach_prefix_attention(blocks, chosen)
            generators[name] = PrefixGenerator(length, len(chosen), width, reparam, 0, "relu", init_std)
        self.generators = torch.nn.ModuleDict(generators)

    @contextmanager
    def active(self) -> Iterator[None]:
        """The prompts in place for a pass, always removed afterwards."""
        for name, gen in self.generators.items():
            set_prefixes(self.wrappers[name], gen())
        try:
            yield
        finally:
            for name in self.generators:
                set_prefixes(self.wrappers[name], None)
