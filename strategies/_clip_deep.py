"""Deep prompts in both CLIP towers (MaPLe, and the independent vision-language prompting PromptSRC builds on):
learned tokens at the input of each tower that are replaced by fresh learned tokens at each of the first J layers.

Not a strategy itself (the leading underscore keeps `strategies.load_all` from importing it as one).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.backbones import ClipBackbone, TextEncoder, VisionBackbone
from bench.models.text import prompt_name
from strategies._vit_prompting import REFERENCE_DEPTH


def scaled_depth(depth: int, clip: ClipBackbone, reference: int = REFERENCE_DEPTH) -> int:
    """Prompt depth J given for ViT-B/16's 12 layers, scaled to the shallower tower and rounded (at least the input
    layer): 9 stays 9 on ViT-B/16, becomes 2 on the glyph CLIP (3 text layers) and on the 2-layer test CLIP."""
    if not 1 <= depth <= reference:
        raise ValueError(f"prompt depth {depth} outside 1..{reference} (given for a {reference}-layer CLIP)")
    shallower = min(clip.visual.num_blocks, len(clip.text.transformer.resblocks))
    return max(1, int(depth * shallower / reference + 0.5))  # rounded: J=9 keeps a deep layer on 2-3 layer towers


class TextContextLayout(nn.Module):
    """`[SOS][n_ctx learned][rest of "{phrase} {name}."][EOS]`, the official MaPLe / IVLP layout: the prompt is
    tokenized with the initial phrase in place and its first `n_ctx` tokens are replaced by the learned context
    (initialised from their embeddings; N(0, 0.02) when the phrase is empty, with placeholders)."""

    def __init__(self, clip: ClipBackbone, class_names: Sequence[str], n_ctx: int, phrase: str) -> None:
        super().__init__()
        text = clip.text
        head = phrase if phrase else " ".join(["X"] * n_ctx)
        if phrase and len(clip.tokenizer.encode(phrase)) < n_ctx:
            raise ValueError(f"ctx_init {phrase!r} has fewer than n_ctx={n_ctx} tokens")
        prompts = [f"{head} {prompt_name(n)}." for n in class_names]
        longest = max(len(clip.tokenizer.encode(p)) for p in prompts) + 2
        if longest > text.context_length:
            raise ValueError(f"prompts need {longest} positions but the text encoder holds {text.context_length}")
        ids = text.tokenize(prompts)
        ids = ids[:, :int(ids.argmax(dim=-1).max()) + 1]  # causal mask: padding after the last EOS changes nothing
        with torch.no_grad():
            embeds = text.embed_ids(ids)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("sos", embeds[:, :1].clone(), persistent=False)
        self.register_buffer("rest", embeds[:, 1 + n_ctx:].clone(), persistent=False)
        self.initial = embeds[0, 1:1 + n_ctx].clone() if phrase else torch.randn(n_ctx, text.width) * 0.02
        self.n_ctx = n_ctx

    def splice(self, ctx: torch.Tensor) -> torch.Tensor:
        """Context `(n_ctx, w)` -> prompt embeddings `(C, L, w)`."""
        n = self.sos.shape[0]
        return torch.cat([self.sos, ctx.unsqueeze(0).expand(n, -1, -1).to(self.sos.dtype), self.rest], dim=1)


def encode_text_deep(text: TextEncoder, embeds: torch.Tensor, ids: torch.Tensor, deep: Sequence[torch.Tensor],
                     start: int = 1) -> torch.Tensor:
    """`TextEncoder.encode_embeddings`, with the `n_ctx` tokens at `start:` replaced before block i (i >= 1) by
    `deep[i - 1]` `(n_ctx, w)`, for the first `len(deep) + 1` blocks. Returns unnormalised features `(N, d)`."""
    n = embeds.shape[1]
    x = embeds + text.positional_embedding[:n].to(embeds.dtype)
    mask = text.attn_mask[:n, :n].to(embeds.dtype) if text.attn_mask is not None else None
    batch_first = getattr(text.transformer, "batch_first", True)
    for i, block in enumerate(text.transformer.resblocks):
        if 1 <= i <= len(deep):
            ctx = deep[i - 1].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :start], ctx, x[:, start + ctx.shape[1]:]], dim=1)
        x = block(x if batch_first else x.transpose(0, 1), attn_mask=mask)
        x = x if batch_first else x.transpose(0, 1)
    x = text.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
    if isinstance(text.text_projection, nn.Linear):
        return text.text_projection(x)
    return x @ text.text_projection if text.text_projection is not None else x


def embed_before_pre_norm(visual: VisionBackbone, x: torch.Tensor) -> tuple[torch.Tensor, nn.Module]:
    """`visual.embed(x)` stopped before the encoder's pre-norm (open_clip's `ln_pre`, timm's `norm_pre`), and that
    norm. The pre-norm is swapped for an identity for the call rather than the embedding copied, so the two flavours
    keep their own patch, class-token and position code."""
    enc = visual.encoder
    attr = "ln_pre" if visual.flavour == "open_clip" else "norm_pre"
    norm = getattr(enc, attr)
    setattr(enc, attr, nn.Identity())
    try:
        tokens = visual.embed(x)
    finally:
        setattr(enc, attr, norm)
    return tokens, norm


def encode_image_deep(visual: VisionBackbone, x: torch.Tensor, prompts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Image features with `prompts[0]` `(n, d)` appended after the patch tokens (no position) BEFORE the pre-norm
    (`ln_pre`), as the official MaPLe / PromptSRC code (`x = cat([x, visual_ctx]); x = ln_pre(x)`), so the input
    prompts are normalised with the patches; replaced by `prompts[i]` (not normalised) before block i for
    i < len(prompts). Returns unnormalised features."""
    tokens, pre_norm = embed_before_pre_norm(visual, x)
    count = prompts[0].shape[0]
    tokens = torch.cat([tokens, prompts[0].to(tokens.dtype).unsqueeze(0).expand(tokens.shape[0], -1, -1)], dim=1)
    tokens = pre_norm(tokens)
    for i, block in enumerate(visual.blocks):
        if 1 <= i < len(prompts):
            fresh = prompts[i].to(tokens.dtype).unsqueeze(0).expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([tokens[:, :-count], fresh], dim=1)
        tokens = block(tokens)
    return visual.finalize(tokens[:, :-count] if count else tokens)


def normalized(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(features, dim=-1)
