"""Shared plumbing of the ViT prompt strategies: prompt-token insertion and prefix (key/value) attention.

Works on `bench.models.backbones.VisionBackbone`, so on timm and open_clip ViTs alike. Not a strategy itself (the leading
underscore keeps `strategies.load_all` from importing it as one).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig
from bench.models.backbones import VisionBackbone


# ------------------------------------------------------------------------------------------ prompt tokens
def xavier_prompt_bound(patch_size: int, dim: int) -> float:
    """The official VPT init bound: xavier-uniform over a (3 * patch_size**2 -> dim) patch projection."""
    return math.sqrt(6.0 / float(3 * patch_size * patch_size + dim))


def patch_size_of(backbone: VisionBackbone) -> int:
    enc = backbone.encoder
    if backbone.flavour == "timm":
        return int(enc.patch_embed.patch_size[0])
    return int(enc.conv1.kernel_size[0])


def insert_prompts(tokens: torch.Tensor, prompts: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """`[prefix, patches]` -> `[prefix, prompts, patches]`; prompts `(P, d)` or `(B, P, d)`, no position added."""
    if prompts.dim() == 2:
        prompts = prompts.unsqueeze(0).expand(tokens.shape[0], -1, -1)
    return torch.cat([tokens[:, :num_prefix], prompts.to(tokens.dtype), tokens[:, num_prefix:]], dim=1)


def replace_prompts(tokens: torch.Tensor, prompts: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Overwrite the prompt slots `[num_prefix : num_prefix + P]` with fresh prompts (VPT-deep)."""
    count = prompts.shape[-2]
    if prompts.dim() == 2:
        prompts = prompts.unsqueeze(0).expand(tokens.shape[0], -1, -1)
    return torch.cat([tokens[:, :num_prefix], prompts.to(tokens.dtype), tokens[:, num_prefix + count:]], dim=1)


HEAD_INITS = ("torch", "zeros", "trunc_normal", "kaiming_fan_out")


def init_head(head: nn.Linear, kind: str) -> nn.Linear:
    """Initialise a linear head as a paper's code does: "torch" (nn.Linear's own default, left untouched so the
    random stream of earlier results holds), "zeros" (L2P in JAX), "trunc_normal" (std 0.02, the L2P PyTorch port
    via timm) or "kaiming_fan_out" (VPT's official head). Every kind but "torch" zeroes the bias."""
    if kind not in HEAD_INITS:
        raise ValueError(f"head_init {kind!r}; valid: {', '.join(HEAD_INITS)}")
    with torch.no_grad():
        if kind == "zeros":
            head.weight.zero_()
        elif kind == "trunc_normal":
            nn.init.trunc_normal_(head.weight, std=0.02)
        elif kind == "kaiming_fan_out":
            nn.init.kaiming_normal_(head.weight, a=0, mode="fan_out")
        if kind != "torch":
            head.bias.zero_()
    return head


NORMALIZATIONS = ("backbone", "unit")


def set_input_normalization(backbone: VisionBackbone, kind: str, name: str) -> None:
    """The pixel normalisation in front of the ViT: "backbone" keeps the checkpoint's mean/std; "unit" uses mean 0,
    std 1, i.e. raw [0, 1] pixels, as the official L2P, DualPrompt and CODA-Prompt codes feed their ViT (JAX
    `norm_01`; the PyTorch ports' loaders apply no Normalize). This changes the frozen features themselves, so the
    shared feature cache, keyed by the backbone's buffers too, keeps the two apart."""
    if kind not in NORMALIZATIONS:
        raise ValueError(f"{name}: normalize {kind!r}; valid: {', '.join(NORMALIZATIONS)}")
    if kind == "unit":
        with torch.no_grad():
            backbone.mean.zero_()
            backbone.std.fill_(1.0)


class FrozenEncoderMixin:
    """Keeps the frozen backbone in eval mode (no dropout / drop-path) while the strategy's own parts train."""

    backbone: nn.Module

    def train(self, mode: bool = True):  # type: ignore[override]
        super().train(mode)  # type: ignore[misc]
        self.backbone.eval()
        return self


class TaskPoolPrompting(FrozenEncoderMixin, Strategy):
    """A frozen ViT read through prefixes drawn from a pool with one slice per task (DualPrompt's E-prompts and keys,
    CODA-Prompt's components), chosen by the frozen pooled feature (the query, cached once per image). Task t trains
    its slice only, so nothing may move the slices of past tasks: weight decay is refused, and the pool must hold a
    slice for every task of the stream (`start_task`). `task` holds the index of the task being trained."""

    family = "continual"
    supported_scenarios = ("class_incremental", "domain_incremental")
    flags = Flags(extra_forward_passes=1)  # the query pass (cached: once per image)
    backbone_families = ("vit", "clip")
    needs_pixels = True
    frozen_slices = "parameters of past tasks"  # what weight decay would move, for the error message

    def __init__(self, cfg: StrategyConfig, backbone: VisionBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        if cfg.weight_decay != 0:
            raise ValueError(f"{self.name}: weight_decay must be 0 (got {cfg.weight_decay}): it would change the "
                             f"frozen {self.frozen_slices}")
        self.register_buffer("task", torch.zeros((), dtype=torch.long))

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def start_task(self, ctx: TaskContext, capacity: int, setting: str, problem: str) -> None:
        """Make `ctx`'s step the task being trained, unless the pool (`capacity` slices, the config's `setting`)
        has no slice for it; `problem` says why in the error (the pool's own words)."""
        if ctx.index >= capacity:
            raise ValueError(f"{self.name}: step {ctx.index + 1} of {ctx.num_steps} {problem}; set {setting} >= "
                             f"{ctx.num_steps}")
        self.task.fill_(ctx.index)


# ------------------------------------------------------------------------------------------- prefix attention
class PrefixAttention(nn.Module):
    """Wraps one frozen self-attention module and prepends `prefix = (k, v)`, each `(B, heads, length, head_dim)`,
    to its keys and values. With no prefix set it computes exactly what the wrapped module computes.

    timm `Attention` (qkv Linear, q_norm/k_norm, proj) and `nn.MultiheadAttention` (open_clip resblocks) are both
    recomputed from their own weights; the prefix keys are used as given (they are keys already, as in prefix
    tuning's past_key_values), so k_norm is not applied to them.
    """

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.inner = attn
        self.is_mha = isinstance(attn, nn.MultiheadAttention)
        self.num_heads: int = attn.num_heads
        self.head_dim: int = attn.head_dim
        self.prefix: tuple[torch.Tensor, torch.Tensor] | None = None  # set per forward by the owning strategy
        self.last_key_length: int | None = None  # key length of the last call (inspected by tests)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                dropout: float) -> torch.Tensor:
        if self.prefix is not None:
            pk, pv = self.prefix
            k = torch.cat([pk.to(k.dtype).expand(k.shape[0], -1, -1, -1), k], dim=2)
            v = torch.cat([pv.to(v.dtype).expand(v.shape[0], -1, -1, -1), v], dim=2)
            if mask is not None:  # prefix columns are visible to every query
                mask = F.pad(mask, (pk.shape[2], 0), value=0.0 if mask.dtype != torch.bool else True)
        self.last_key_length = int(k.shape[2])
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)

    def _timm(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        a = self.inner
        if is_causal or getattr(a, "gate", None) is not None:
            raise NotImplementedError("prefix attention supports plain (non-causal, ungated) timm ViT attention")
        b, n, _ = x.shape
        qkv = a.qkv(x).reshape(b, n, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = a.q_norm(q), a.k_norm(k)
        out = self._attend(q, k, v, attn_mask, a.attn_drop.p if self.training else 0.0)
        out = a.norm(out.transpose(1, 2).reshape(b, n, a.attn_dim))
        return a.proj_drop(a.proj(out))

    def _mha(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        a = self.inner
        if not a.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, n, d = query.shape
        w_q, w_k, w_v = a.in_proj_weight.chunk(3)
        b_q, b_k, b_v = a.in_proj_bias.chunk(3) if a.in_proj_bias is not None else (None, None, None)

        def heads(t: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            return F.linear(t, w, bias).reshape(b, t.shape[1], a.num_heads, a.head_dim).transpose(1, 2)

        q, k, v = heads(query, w_q, b_q), heads(key, w_k, b_k), heads(value, w_v, b_v)
        if attn_mask is not None and attn_mask.dtype == torch.bool:  # MHA: True = blocked; SDPA: True = visible
            attn_mask = ~attn_mask
        if attn_mask is not None and attn_mask.dim() == 3:  # MHA's per-head (B * heads, L, S) -> SDPA's 4-D
            attn_mask = attn_mask.reshape(b, a.num_heads, *attn_mask.shape[1:])
        out = self._attend(q, k, v, attn_mask, a.dropout if self.training else 0.0)
        out = a.out_proj(out.transpose(1, 2).reshape(b, n, d))
        return out if a.batch_first else out.transpose(0, 1)

    def forward(self, x: torch.Tensor, *args, **kwargs):
        if not self.is_mha:
            return self._timm(x, *args, **kwargs)
        key = args[0] if len(args) > 0 else kwargs.get("key", x)
        value = args[1] if len(args) > 1 else kwargs.get("value", x)
        return self._mha(x, key, value, kwargs.get("attn_mask")), None  # MHA returns (output, weights)


def attach_prefix_attention(blocks: Sequence[nn.Module], layers: Sequence[int]) -> list[PrefixAttention]:
    """Replace the attention module of each chosen block by a `PrefixAttention` wrapping it (weights unchanged).
    `blocks`: a ViT's blocks, or a CoCa decoder's."""
    wrappers = []
    for i in layers:
        block = blocks[i]
        if not isinstance(block.attn, PrefixAttention):
            block.attn = PrefixAttention(block.attn)
        wrappers.append(block.attn)
    return wrappers


def prefix_heads(flat: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(length, 2 * d)` -> keys and values `(1, heads, length, head_dim)`."""
    length = flat.shape[0]
    kv = flat.reshape(length, 2, num_heads, flat.shape[1] // (2 * num_heads)).permute(1, 2, 0, 3)  # length 0 ok
    return kv[0].unsqueeze(0), kv[1].unsqueeze(0)



ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class PrefixGenerator(nn.Module):
    """The trainable part of OFA-style deep prompts for one stack of `layers` attention layers of width `dim`.

    Without reparameterisation an embedding `(length, layers * 2 * dim)` holds every layer's prefix keys and values
    directly; with it, an embedding `(length, dim)` goes through Linear -> act -> Linear to that width (prefix
    tuning's MLP, which stabilises training and can be dropped after it). Output `(layers, length, 2 * dim)`: key half
    first, value half second.
    """

    def __init__(self, length: int, layers: int, dim: int, reparam: bool = False, hidden: int = 0,
                 act: str = "relu", init_std: float = 1.0) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"reparam_act {act!r}; valid: {sorted(ACTIVATIONS)}")
        self.length, self.layers, self.dim = length, layers, dim
        self.embedding = nn.Parameter(torch.randn(length, dim if reparam else layers * 2 * dim) * init_std)
        hidden = hidden or dim
        self.reparam = (nn.Sequential(nn.Linear(dim, hidden), ACTIVATIONS[act](), nn.Linear(hidden, layers * 2 * dim))
                        if reparam else None)

    def forward(self) -> torch.Tensor:
        flat = self.reparam(self.embedding) if self.reparam is not None else self.embedding
        return flat.reshape(self.length, self.layers, 2 * self.dim).transpose(0, 1)


def set_prefixes(wrappers: Sequence[PrefixAttention], per_layer: torch.Tensor | None) -> None:
    """Give each wrapped layer its `(length, 2 * d)` prefix, or clear them all (`per_layer=None`)."""
    for i, layer in enumerate(wrappers):
        layer.prefix = None if per_layer is None else prefix_heads(per_layer[i], layer.num_heads)


# ---------------------------------------------------------------------- per-image prefixes (prompt pools)
REFERENCE_DEPTH = 12  # ViT-B/16: the depth the prompt-pool papers give their layer indices for


def scale_layers(layers: Sequence[int], depth: int, reference: int = REFERENCE_DEPTH) -> list[int]:
    """Layer indices given for a `reference`-block ViT, mapped to a `depth`-block one by `l * depth // reference`
    (identity on ViT-B; on the 6-block glyph ViT DualPrompt's G at 0-1 and E at 2-4 become 0 and 1-2)."""
    bad = [layer for layer in layers if not 0 <= layer < reference]
    if bad:
        raise ValueError(f"layer indices {bad} outside 0..{reference - 1} (they are given for a {reference}-block "
                         f"ViT and scaled to the backbone's depth)")
    return sorted({layer * depth // reference for layer in layers})


def batched_heads(tokens: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Prefix tokens `(B, length, d)` -> `(B, heads, length, head_dim)`, as `PrefixAttention.prefix` takes them."""
    b, length, d = tokens.shape
    return tokens.reshape(b, length, num_heads, d // num_heads).transpose(1, 2)


def run_with_prefixes(backbone: VisionBackbone, tokens: torch.Tensor,
                      prefixes: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Run every block, block i attending also to `prefixes[i] = (keys, values)`, each `(B, length, d)` (used as
    keys and values directly, as in prefix tuning). The layers must have been wrapped by `attach_prefix_attention`;
    their prefixes are cleared afterwards, even on error."""
    wrappers = {i: backbone.blocks[i].attn for i in prefixes}
    try:
        for i, (keys, values) in prefixes.items():
            layer = wrappers[i]
            layer.prefix = (batched_heads(keys, layer.num_heads), batched_heads(values, layer.num_heads))
        return backbone.run_blocks(tokens)
    finally:
        for layer in wrappers.values():
            layer.prefix = None
