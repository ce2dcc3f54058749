"""Full fine-tuning of the sequence-to-sequence CoCa: every weight trains."""
from __future__ import annotations

from torch import nn

from bench.multimodal.methods import Seq2SeqMethodBase, register_seq2seq_method


@register_seq2seq_method("finetune")
class FineTune(Seq2SeqMethodBase):
    """Trains: every parameter of the backbone (image encoder, text decoder, embeddings). Adds nothing."""

    def __init__(self) -> None:
        super().__init__()

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        return list(backbone.parameters())
