"""Full fine-tuning of the sequence-to-sequence CoCa: every weight trains."""
from __future__ import annotations

from torch import nn

from bench.multimodal.methods import Seq2SeqMethodBase, register_seq2seq_method


@register_seq2seq_method("finetune")
class FineTune(Seq2SeqMethodBase):
    """Trains: every parameter of the backbone (image encoder, text decoder, embeddings). Adds nothing."""

    default_lr = 3e-3  # the v5 default suite's hand-picked rate; `promptshift tune` searches x0.3 / x1 / x3

    def __init__(self) -> None:
        super().__init__()

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        return list(backbone.parameters())
