"""OFA-PT's deep prompts on the sequence-to-sequence CoCa (the mechanism: strategies/_seq2seq_prompts.py)."""
from __future__ import annotations

from contextlib import AbstractContextManager

from torch import nn

from bench.multimodal.methods import Seq2SeqMethodBase, freeze, register_seq2seq_method
from strategies._seq2seq_prompts import DeepPrompts


@register_seq2seq_method("deep_prompt")
class DeepPrompt(Seq2SeqMethodBase):
    """OFA-style deep prompt tuning (Yang et al., ACL Findings 2023): `length` learned prefix keys/values in the
    self-attention of the first `depth` layers (0: all) of the image encoder and of the text decoder, optionally
    reparameterised by an MLP. Trains: the prompts (and the MLP). Freezes: the whole backbone."""

    default_lr = 0.1  # the v5 default suite's hand-picked rate; `promptshift tune` searches x0.3 / x1 / x3

    def __init__(self, length: int = 8, depth: int = 0, reparam: bool = False, init_std: float = 0.02) -> None:
        if length < 1:
            raise ValueError(f"deep_prompt: length must be >= 1, got {length}")
        super().__init__(length=length, depth=depth, reparam=reparam, init_std=init_std)
        self.prompts: DeepPrompts | None = None

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        freeze(backbone)
        p = self._params
        self.prompts = DeepPrompts(backbone, p["length"], p["depth"], p["reparam"], p["init_std"])
        return list(self.prompts.parameters())

    def active(self) -> AbstractContextManager:
        if self.prompts is None:
            raise RuntimeError("deep_prompt is not attached: call attach(backbone) first")
        return self.prompts.active()
