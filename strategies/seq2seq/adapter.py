"""Bottleneck adapters in the encoder and decoder blocks of the sequence-to-sequence CoCa, the model frozen."""
from __future__ import annotations

from torch import nn

from bench.multimodal.methods import Seq2SeqMethodBase, freeze, register_seq2seq_method
from strategies.adapter import PLACEMENTS, Bottleneck, _apply_to_output  # noqa: PLC2701  (one Bottleneck)
from strategies.seq2seq._blocks import blocks_of, width_of


@register_seq2seq_method("adapter")
class Adapter(Seq2SeqMethodBase):
    """Adapters (Houlsby et al., ICML 2019), OFA-PT's Adapter baseline: a zero-initialised bottleneck
    h + up(GELU(down(h))) of width `width // reduction` on the output of each block's attention and MLP
    ("houlsby") or its MLP only ("pfeiffer"), before the residual sum, in every block of the chosen `stacks`
    (image encoder; decoder: unimodal text, multimodal self- and cross-attention blocks). Trains: the adapters.
    Freezes: the whole backbone. Forward hooks on `block.attn` / `block.mlp`, so the backbone's own modules and
    parameter list stay as they were; the adapters start as the identity (the model starts as the pretrained one)."""

    default_lr = 0.01  # the v5 default suite's hand-picked rate; `promptshift tune` searches x0.3 / x1 / x3

    def __init__(self, reduction: int = 8, placement: str = "houlsby", stacks: str = "encoder+decoder") -> None:
        if placement not in PLACEMENTS:
            raise ValueError(f"adapter: unknown placement {placement!r}; valid: {', '.join(PLACEMENTS)}")
        if reduction < 1:
            raise ValueError(f"adapter: reduction={reduction} must be at least 1")
        super().__init__(reduction=reduction, placement=placement, stacks=stacks)
        self.adapters = nn.ModuleList()
        self._hooks: list = []

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        freeze(backbone)
        for block in blocks_of(backbone, self._params["stacks"]):
            dim = width_of(block)
            sites = nn.ModuleDict({site: Bottleneck(dim, max(1, dim // self._params["reduction"]))
                                   for site in PLACEMENTS[self._params["placement"]]})
            for site, adapter in sites.items():
                self._hooks.append(getattr(block, site).register_forward_hook(_apply_to_output(adapter)))
            self.adapters.append(sites)
        return list(self.adapters.parameters())
