"""LoRA on the attention and MLP projections of the sequence-to-sequence CoCa, the model frozen.

Hand-written on `torch.nn.utils.parametrize` rather than peft: open_clip's attention is an nn.MultiheadAttention
with a fused `in_proj_weight` that `F.multi_head_attention_forward` reads directly, and peft 0.21 adapts that
module by merging the update into the frozen weights before each forward and subtracting it after, so the
"frozen" weights drift in floating point (see strategies/lora.py). A parametrization computes W + B A on access and
leaves the original Parameter object untouched (bit for bit); the same mechanism serves the MLP's nn.Linear layers,
so one code path covers every target.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from bench.multimodal.methods import Seq2SeqMethodBase, freeze, register_seq2seq_method
from strategies.seq2seq._blocks import blocks_of

TARGETS = ("attn", "mlp")


class LowRankUpdate(nn.Module):
    """W -> W + (alpha / rank) B A, with A `(rank, in)` Kaiming-uniform and B `(out, rank)` zero (as peft
    initialises them), so the model starts as the pretrained one."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.lora_B @ self.lora_A).to(weight.dtype)


def _weights(block: nn.Module, targets: tuple[str, ...]) -> list[tuple[nn.Module, str]]:
    """(module, weight name) of each adapted projection: attention's fused q/k/v input projection (one low-rank
    update over the stacked q, k, v rows, as peft adapts timm's fused qkv Linear) and output projection; the MLP's
    two layers."""
    out = []
    if "attn" in targets:
        out += [(block.attn, "in_proj_weight"), (block.attn.out_proj, "weight")]
    if "mlp" in targets:
        out += [(block.mlp.c_fc, "weight"), (block.mlp.c_proj, "weight")]
    return out


@register_seq2seq_method("lora")
class LoRA(Seq2SeqMethodBase):
    """LoRA (Hu et al., ICLR 2022) on the projections named by `targets` ("attn", "mlp", "attn+mlp") in every block
    of the chosen `stacks`. Trains: the A and B factors. Freezes: the whole backbone."""

    default_lr = 0.01  # the v5 default suite's hand-picked rate; `promptshift tune` searches x0.3 / x1 / x3

    def __init__(self, rank: int = 4, alpha: float = 8.0, targets: str = "attn+mlp",
                 stacks: str = "encoder+decoder") -> None:
        parts = tuple(targets.split("+"))
        if not parts or any(t not in TARGETS for t in parts):
            raise ValueError(f"lora: unknown targets {targets!r}; valid: attn, mlp, attn+mlp")
        if rank < 1:
            raise ValueError(f"lora: rank must be >= 1, got {rank}")
        super().__init__(rank=rank, alpha=alpha, targets=targets, stacks=stacks)
        self.updates = nn.ModuleList()

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        freeze(backbone)
        rank, alpha = self._params["rank"], self._params["alpha"]
        for block in blocks_of(backbone, self._params["stacks"]):
            for module, weight_name in _weights(block, tuple(self._params["targets"].split("+"))):
                out_features, in_features = getattr(module, weight_name).shape
                update = LowRankUpdate(out_features, in_features, rank, alpha).to(getattr(module, weight_name).device)
                parametrize.register_parametrization(module, weight_name, update)
                self.updates.append(update)
        return list(self.updates.parameters())
