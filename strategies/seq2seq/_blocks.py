"""The transformer blocks of the sequence-to-sequence CoCa that the methods put their modules into."""
from __future__ import annotations

from torch import nn

STACKS = ("encoder", "decoder")


def blocks_of(backbone: nn.Module, stacks: str) -> list[nn.Module]:
    """The residual blocks of the chosen stacks ("encoder", "decoder" or "encoder+decoder"), bottom to top: the
    image encoder's blocks; the decoder's unimodal text blocks, then its multimodal self- and cross-attention blocks
    (all of CoCa's decoder in the paper's sense). Every block has `.attn` and `.mlp`."""
    chosen = stacks.split("+")
    if not chosen or any(s not in STACKS for s in chosen) or len(set(chosen)) != len(chosen):
        raise ValueError(f"stacks {stacks!r}; valid: encoder, decoder, encoder+decoder")
    out: list[nn.Module] = []
    if "encoder" in chosen:
        out += list(backbone.visual.blocks)
    if "decoder" in chosen:
        out += list(backbone.decoder_blocks) + list(backbone.model.text_decoder.cross_attn)
    return out


def width_of(block: nn.Module) -> int:
    return int(block.ln_1.normalized_shape[0])
