"""BitFit on the sequence-to-sequence CoCa: the bias terms only."""
from __future__ import annotations

from torch import nn

from bench.multimodal.methods import Seq2SeqMethodBase, freeze, register_seq2seq_method


@register_seq2seq_method("bitfit")
class BitFit(Seq2SeqMethodBase):
    """BitFit (Ben Zaken et al., ACL 2022), OFA-PT's BitFit baseline. Trains: every parameter named `*bias`
    (attention in/out projections, MLPs, layer norms, of the encoder and the decoder). Freezes: everything else."""

    default_lr = 0.03  # the v5 default suite's hand-picked rate; `promptshift tune` searches x0.3 / x1 / x3

    def __init__(self) -> None:
        super().__init__()

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        freeze(backbone)
        return [p for name, p in backbone.named_parameters() if name.endswith("bias")]
