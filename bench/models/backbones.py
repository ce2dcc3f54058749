"""Backbones by name: timm ViTs and open_clip dual encoders behind one small, uniform view.

Every prompt or adapter strategy needs the same private internals of a ViT (token embedding, the block list,
the final pooling). They differ between timm and open_clip, so this module is the one place that knows them;
strategies only see `VisionBackbone` and `TextEncoder`.

Inputs are always pixels in [0, 1]: normalisation (and resizing, for real 224-pixel checkpoints) happens inside
the backbone, so adversarial attacks and corruptions work in pixel space for every model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.registry import Registry
from bench.models.checkpoints import CHECKPOINT_DIR, verified_checkpoint
from bench.models.text import CompactTokenizer


# --------------------------------------------------------------------------------------------- vision side
class VisionBackbone(nn.Module):
    """A ViT image encoder seen as `embed -> blocks -> finalize`.

    `embed(x)` returns the token sequence (prefix tokens first, position embeddings added), `blocks` is the list of
    transformer blocks (each maps tokens -> tokens), `finalize(tokens)` pools to one feature vector per image.
    """

    def __init__(self, encoder: nn.Module, flavour: str, mean: Sequence[float], std: Sequence[float],
                 input_size: int, name: str) -> None:
        super().__init__()
        if flavour not in ("timm", "open_clip"):
            raise ValueError(f"unknown ViT flavour {flavour!r}")
        self.encoder = encoder
        self.flavour = flavour
        self.name = name
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        if flavour == "timm":
            self.embed_dim: int = encoder.embed_dim
            self.num_features: int = encoder.num_features
            self.num_prefix_tokens: int = encoder.num_prefix_tokens
            self.blocks: Sequence[nn.Module] = encoder.blocks
        else:
            self.embed_dim = encoder.transformer.width
            self.num_features = encoder.output_dim if encoder.proj is not None else self.embed_dim
            self.num_prefix_tokens = 1
            self.blocks = encoder.transformer.resblocks

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> the normalised, correctly sized input the encoder was trained on."""
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels -> tokens `(B, prefix + patches, embed_dim)` ready for the first block."""
        x = self.preprocess(x)
        enc = self.encoder
        if self.flavour == "timm":
            x = enc.patch_embed(x)
            x = enc._pos_embed(x)
            x = enc.patch_drop(x)
            return enc.norm_pre(x)
        return enc._embeds(x)

    def finalize(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens after the last block -> pooled feature `(B, num_features)`."""
        enc = self.encoder
        if self.flavour == "timm":
            return enc.forward_head(enc.norm(tokens), pre_logits=True)
        pooled, _ = enc._pool(tokens)
        return pooled @ enc.proj if enc.proj is not None else pooled

    def final_norm(self) -> nn.Module:
        """The norm applied after the last block (trained by partial-k)."""
        return self.encoder.norm if self.flavour == "timm" else self.encoder.ln_post

    def run_blocks(self, tokens: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for block in list(self.blocks)[start:stop]:
            tokens = block(tokens)
        return tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finalize(self.run_blocks(self.embed(x)))


# ----------------------------------------------------------------------------------------------- text side


class TextEncoder(nn.Module):
    """open_clip's text tower seen as `token ids -> embeddings -> features`, so learned context can be spliced in.

    `encode_embeddings(embeds, ids)` runs everything after the token-embedding lookup; `ids` only locates the
    end-of-text token whose output is the sentence feature.
    """

    def __init__(self, clip_model: nn.Module, tokenizer: Callable) -> None:
        super().__init__()
        m = clip_model
        if hasattr(m, "text"):  # CustomTextCLIP / CoCa keep the text tower in `.text`
            t = m.text
            self.token_embedding, self.positional_embedding = t.token_embedding, t.positional_embedding
            self.transformer, self.ln_final, self.text_projection = t.transformer, t.ln_final, t.text_projection
            self.register_buffer("attn_mask", t.attn_mask, persistent=False)
        else:
            self.token_embedding, self.positional_embedding = m.token_embedding, m.positional_embedding
            self.transformer, self.ln_final, self.text_projection = m.transformer, m.ln_final, m.text_projection
            self.register_buffer("attn_mask", m.attn_mask, persistent=False)
        self.tokenizer = tokenizer
        self.width: int = self.token_embedding.embedding_dim
        self.context_length: int = self.positional_embedding.shape[0]

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts), context_length=self.context_length).to(self.positional_embedding.device)

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids)

    def encode_embeddings(self, embeds: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings `(N, L, width)` -> projected text features `(N, embed_dim)`."""
        n = embeds.shape[1]  # may be < context_length: under a causal mask, tokens after the EOS change nothing
        x = embeds + self.positional_embedding[:n].to(embeds.dtype)
        mask = self.attn_mask[:n, :n].to(embeds.dtype) if self.attn_mask is not None else None
        x = self.ln_final(self.transformer(x, attn_mask=mask))
        x = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection if self.text_projection is not None else x

    def encode_shared_prefix(self, prefix: torch.Tensor, suffix: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Features `(B, C, embed_dim)` of the B x C sequences `[prefix_b; suffix_c]`: prefix `(B, P, width)`,
        suffix `(C, S, width)`, `ids` `(C, P + S)` locating each sequence's end-of-text token (in the suffix).

        The same numbers as `encode_embeddings` on the concatenated sequences, with less work where prompts share
        their beginning (CoCoOp: start token and the image's context, then each class's name). Under the causal
        mask a prefix position never sees what follows it, so its hidden states are computed once per prefix, not
        once per sequence; each suffix attends to them as extra keys and values. Falls back to the concatenated
        sequences where that does not hold (no causal mask, another block layout)."""
        b, p, width = prefix.shape
        c, s, _ = suffix.shape
        if not self._prefix_shareable():
            full = torch.cat([prefix.unsqueeze(1).expand(b, c, p, width),
                              suffix.unsqueeze(0).expand(b, c, s, width)], dim=2)
            return self.encode_embeddings(full.reshape(b * c, p + s, width), ids.repeat(b, 1)).view(b, c, -1)
        position = self.positional_embedding[:p + s].to(prefix.dtype)
        mask = self.attn_mask[:p + s, :p + s].to(prefix.dtype)
        head = prefix + position[:p]  # (B, P, w)
        tail = (suffix + position[p:]).unsqueeze(0).expand(b, c, s, width).reshape(b * c, s, width)
        for block in self.transformer.resblocks:
            shared = block.ln_1(head).unsqueeze(1).expand(b, c, p, width).reshape(b * c, p, width)
            query = block.ln_1(tail)
            keys = torch.cat([shared, query], dim=1)
            attended = block.attn(query, keys, keys, need_weights=False, attn_mask=mask[p:])[0]
            tail = tail + block.ls_1(attended)
            tail = tail + block.ls_2(block.mlp(block.ln_2(tail)))
            head = block(head, attn_mask=mask[:p, :p])
        x = self.ln_final(tail)
        eos = (ids.argmax(dim=-1) - p).repeat(b)
        if bool((eos < 0).any()):
            raise ValueError("an end-of-text token lies inside the shared prefix")
        x = x[torch.arange(x.shape[0], device=x.device), eos]
        if isinstance(self.text_projection, nn.Linear):
            x = self.text_projection(x)
        elif self.text_projection is not None:
            x = x @ self.text_projection
        return x.view(b, c, -1)

    def _prefix_shareable(self) -> bool:
        """open_clip's plain residual blocks (batch-first `nn.MultiheadAttention`, no cross-attention) under a
        causal mask: what `encode_shared_prefix` re-runs piece by piece."""
        blocks = getattr(self.transformer, "resblocks", None)
        if self.attn_mask is None or blocks is None or getattr(self.transformer, "grad_checkpointing", False):
            return False
        return all(isinstance(getattr(block, "attn", None), nn.MultiheadAttention) and block.attn.batch_first
                   and not hasattr(block, "ln_1_kv")
                   and all(hasattr(block, name) for name in ("ln_1", "ls_1", "ln_2", "mlp", "ls_2"))
                   for block in blocks)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        ids = self.tokenize(texts)
        return self.encode_embeddings(self.embed_ids(ids), ids)


class ClipBackbone(nn.Module):
    """A CLIP-style dual encoder: `visual` (a `VisionBackbone`), `text` (a `TextEncoder`) and the logit scale."""

    def __init__(self, model: nn.Module, tokenizer: Callable, mean: Sequence[float], std: Sequence[float],
                 name: str) -> None:
        super().__init__()
        self.model = model  # kept whole: CoCa strategies need its decoder
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.visual = VisionBackbone(model.visual, "open_clip", mean, std, int(size), name)
        self.text = TextEncoder(model, tokenizer)
        self.tokenizer = tokenizer
        self.name = name
        self.embed_dim: int = self.visual.num_features

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=100.0)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text(texts)


def init_coca_decoder(decoder: nn.Module) -> None:
    """Initialise a freshly built open_clip CoCa multimodal decoder.

    open_clip 3.x never calls `MultimodalTransformer.init_parameters` (which would fail: it reads an attribute the
    class lacks), so its output projection stays `torch.empty` garbage in a randomly initialised CoCa. Pretrained
    checkpoints overwrite it; training from scratch needs this: the text-tower scheme, applied to both stacks."""
    width, layers = decoder.width, len(decoder.resblocks)
    proj_std, attn_std, fc_std = (width ** -0.5) * ((2 * layers) ** -0.5), width ** -0.5, (2 * width) ** -0.5
    with torch.no_grad():
        for block in list(decoder.resblocks) + list(decoder.cross_attn):
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(decoder.text_projection, std=attn_std)


class CocaBackbone(nn.Module):
    """An open_clip CoCa encoder-decoder seen as three parts a prompt strategy can reach into.

    - `visual`: the image encoder as a `VisionBackbone`; `image_tokens(x)` returns the attention-pooled image tokens
      the decoder cross-attends to.
    - `decoder_blocks`: the decoder's self-attention blocks bottom to top. CoCa's text decoder is two stacks: the
      unimodal text layers (`model.text`, causal, no image) and the multimodal layers (`model.text_decoder`, which
      add cross-attention to the image tokens); both are the decoder in the CoCa paper's sense.
    - `caption_logits(image_tokens, ids)`: next-token logits under teacher forcing, `(B, L - 1, vocab)`.
    """

    def __init__(self, model: nn.Module, tokenizer: Callable, mean: Sequence[float], std: Sequence[float],
                 name: str) -> None:
        super().__init__()
        if not hasattr(model, "text_decoder"):
            raise TypeError(f"{name}: {type(model).__name__} has no text decoder; a CoCa model is needed")
        self.model = model
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.visual = VisionBackbone(model.visual, "open_clip", mean, std, int(size), name)
        self.tokenizer = tokenizer
        self.name = name
        self.context_length: int = model.text.context_length
        self.decoder_blocks: Sequence[nn.Module] = (list(model.text.transformer.resblocks)
                                                    + list(model.text_decoder.resblocks))
        self.decoder_width: int = model.text_decoder.width
        self.pad_id: int = 0

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids `(N, L)` trimmed to the longest text: under the causal mask padding changes no real token."""
        ids = self.tokenizer(list(texts), context_length=self.context_length)
        length = int((ids != self.pad_id).sum(dim=1).max())
        return ids[:, :length].to(self.model.logit_scale.device)

    def image_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels -> the image tokens `(B, queries - 1, width)` the multimodal decoder attends to."""
        tokens = self.visual.run_blocks(self.visual.embed(x))
        _, image_tokens = self.visual.encoder._pool(tokens)
        return image_tokens

    def text_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> outputs of the unimodal text layers `(N, L, width)` (the appended CLS output dropped)."""
        _, tokens = self.model.text(ids)
        return tokens

    def caption_logits(self, image_tokens: torch.Tensor, ids: torch.Tensor,
                       text_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced next-token logits `(B, L - 1, vocab)`: position t predicts `ids[:, t + 1]`."""
        text_tokens = self.text_tokens(ids) if text_tokens is None else text_tokens
        return self.model.text_decoder(image_tokens, text_tokens[:, :-1])

    def caption_scores(self, image_tokens: torch.Tensor, ids: torch.Tensor, text_tokens: torch.Tensor | None = None,
                       mean: bool = False, max_elements: int = 1 << 22) -> torch.Tensor:
        """Log-likelihood of every candidate caption for every image, `(B, C)`: the sum (or `mean`) over the
        caption's tokens after the start token of log p(token | image, earlier tokens), padding excluded.

        Ranking candidates by it is exact constrained decoding over the candidate set (what OFA's trie-constrained
        generation approximates with beams). `text_tokens` (the unimodal layers' outputs for `ids`) may be passed
        in: they do not depend on the image, so a caller computes them once for all images.
        """
        text_tokens = self.text_tokens(ids) if text_tokens is None else text_tokens
        b, c = image_tokens.shape[0], ids.shape[0]
        targets = ids[:, 1:]
        keep = (targets != self.pad_id).to(image_tokens.dtype)
        # Chunk the candidates so that the (images x candidates x length x vocab) logits stay bounded: 4M elements
        # keeps a chunk's activations near the CPU's caches (256 images x 67 candidates, coca_glyph_tiny, one core:
        # 4.4 ms per image at 4M against 5.4-7.0 at 16M).
        chunk = max(1, max_elements // max(1, b * targets.shape[1] * self.model.text_decoder.text_projection.shape[1]))
        scores = []
        for start in range(0, c, chunk):
            sl = slice(start, start + chunk)
            n = targets[sl].shape[0]
            logp = self._candidate_logits(image_tokens, text_tokens[sl, :-1]).float().log_softmax(dim=-1)
            token_logp = logp.gather(-1, targets[sl].expand(b, -1, -1).unsqueeze(-1)).squeeze(-1)  # (B, n, L - 1)
            total = (token_logp * keep[sl]).sum(dim=-1)
            scores.append(total / keep[sl].sum(dim=-1) if mean else total)
        return torch.cat(scores, dim=1)

    def _candidate_logits(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits `(B, n, L, vocab)` of n candidate captions (`text_tokens`: `(n, L, width)`, the same
        for every image) under each of B images: the multimodal decoder's forward with the pairs folded.

        The text decoder computes `(B * n)` sequences; two things in it do not need the pairs. Its first
        self-attention block sees only text, so it runs once per candidate; and cross-attention has no mask, so each
        text position attends to its image independently: the n candidates' positions become one query sequence
        of length n * L per image, and the image's keys and values are projected once instead of n times (the
        16 image tokens cost more than the 3-5 caption tokens). Same numbers as the decoder on the repeated pairs
        (tests/test_ofa_prompt_coca.py), about half the time."""
        decoder = self.model.text_decoder
        b, (n, length, width) = image_tokens.shape[0], text_tokens.shape
        if not decoder.batch_first or decoder.grad_checkpointing:  # the library's forward on the repeated pairs
            img = image_tokens.repeat_interleave(n, dim=0)
            return decoder(img, text_tokens.repeat(b, 1, 1)).view(b, n, length, -1)
        mask = decoder.attn_mask[:length, :length]
        x = text_tokens
        for depth, (self_attn, cross_attn) in enumerate(zip(decoder.resblocks, decoder.cross_attn)):
            if depth == 0:  # image-free: once per candidate, then one copy per image
                x = self_attn(x, attn_mask=mask).unsqueeze(0).expand(b, n, length, width)
            else:
                x = self_attn(x.reshape(b * n, length, width), attn_mask=mask)
            x = cross_attn(x.reshape(b, n * length, width), k_x=image_tokens, v_x=image_tokens)
        out = decoder.ln_final(x)
        if decoder.text_projection is not None:
            out = out @ decoder.text_projection
        return out.view(b, n, length, -1)

    @torch.no_grad()
    def generate(self, x: torch.Tensor, max_length: int | None = None) -> list[str]:
        """Greedy decoding from pixels; returns the generated texts (what OFA-style classification reads out)."""
        sot, eot = self.tokenizer.sot_token_id, self.tokenizer.eot_token_id
        image_tokens = self.image_tokens(x)
        ids = torch.full((x.shape[0], 1), sot, dtype=torch.long, device=x.device)
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range((max_length or self.context_length) - 1):
            logits = self.model.text_decoder(image_tokens, self.text_tokens(ids))[:, -1]
            logits[:, [self.pad_id, sot]] = float("-inf")
            step = logits.argmax(dim=-1).masked_fill(done, self.pad_id)
            ids = torch.cat([ids, step[:, None]], dim=1)
            done |= step == eot
            if bool(done.all()):
                break
        texts = []
        for row in ids[:, 1:].tolist():
            texts.append(self.tokenizer.decode(row[:row.index(eot)] if eot in row else row))
        return texts


# ------------------------------------------------------------------------------------------ eval geometry
def eval_geometry(backbone: nn.Module) -> Callable:
    """The geometric part (resize, centre crop) of the backbone's library's own eval transform, PIL in, PIL out:
    timm's `create_transform(**resolve_data_config(model=...), is_training=False)` for timm ViTs (resize to
    floor(size / crop_pct), its interpolation), open_clip's `image_transform(size, is_train=False)` for CLIP and
    CoCa towers. Taken from the libraries rather than re-derived: their rounding of the resize and of the crop
    offsets is what the published numbers used. Colour conversion and normalisation stay with the backbone."""
    from torchvision import transforms as T

    visual = getattr(backbone, "visual", backbone)
    size = int(getattr(visual, "input_size", 224))
    if getattr(visual, "flavour", "") == "timm":
        from timm.data import create_transform, resolve_data_config

        config = resolve_data_config({}, model=visual.encoder)
        config["input_size"] = (3, size, size)
        full = create_transform(**config, is_training=False)
    else:
        import open_clip

        full = open_clip.image_transform(size, is_train=False)
    return T.Compose([t for t in full.transforms if isinstance(t, (T.Resize, T.CenterCrop))])


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class BackboneSpec:
    """How to build one named backbone. `family` is "vit" (a `VisionBackbone`) or "clip" (a `ClipBackbone`)."""

    name: str
    family: str
    build: Callable[[str | None], nn.Module]  # weights: None = the default for this name, "none" = random init
    description: str


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(name: str, family: str, description: str) -> Callable:
    def wrap(build: Callable[[str | None], nn.Module]) -> Callable[[str | None], nn.Module]:
        BACKBONES.add(name, BackboneSpec(name, family, build, description))
        return build
    return wrap


def create_backbone(name: str, weights: str | None = None) -> nn.Module:
    """Build a backbone by registry name. `weights`: None (the name's default), "none" (random), or a file path."""
    return BACKBONES.get(name).build(weights)


# Architecture of the embedded ViT: 32-pixel glyphs, 8-pixel patches (16 tokens + class token) keep a
# training step cheap enough for the whole default grid to run on two CPU cores.
GLYPH_VIT_ARCH = dict(img_size=32, patch_size=8, embed_dim=96, depth=6, num_heads=3, mlp_ratio=4.0)
GLYPH_MEAN, GLYPH_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def timm_vit(arch: str, weights: str | None, name: str, default_file: Callable[[], Path] | None = None,
             **arch_kwargs) -> VisionBackbone:
    """A timm ViT with its head removed. Weights: timm's own pretrained tag, or a local file through
    `pretrained_cfg_overlay` (the ordinary timm way to load a local checkpoint)."""
    import timm

    if weights == "none":
        model = timm.create_model(arch, pretrained=False, num_classes=0, **arch_kwargs)
    elif weights is None and default_file is None:
        model = timm.create_model(arch, pretrained=True, num_classes=0, **arch_kwargs)
    else:
        file = Path(weights) if weights is not None else default_file()
        if not file.exists():
            raise FileNotFoundError(f"weights file {file} does not exist")
        model = timm.create_model(arch, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay=dict(file=str(file), num_classes=0), **arch_kwargs)
    cfg = model.pretrained_cfg
    mean = cfg.get("mean", GLYPH_MEAN) if default_file is None else GLYPH_MEAN
    std = cfg.get("std", GLYPH_STD) if default_file is None else GLYPH_STD
    size = model.patch_embed.img_size[0]
    return VisionBackbone(model, "timm", mean, std, size, name)


@register_backbone("vit_glyph_tiny", "vit", "ViT 32px/8, width 96, depth 6; pretrained by `promptshift pretrain`")
def _vit_glyph_tiny(weights: str | None) -> VisionBackbone:
    return timm_vit("vit_tiny_patch16_224", weights, "vit_glyph_tiny",
                    default_file=lambda: verified_checkpoint("vit_glyph_tiny"), **GLYPH_VIT_ARCH)


@register_backbone("vit_test_micro", "vit", "random 2-block ViT for fast tests (width 32)")
def _vit_test_micro(weights: str | None) -> VisionBackbone:
    arch = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)
    return timm_vit("vit_tiny_patch16_224", weights or "none", "vit_test_micro",
                    default_file=lambda: Path("none"), **arch)


@register_backbone("vit_base_patch16_224.augreg_in21k", "vit",
                   "ViT-B/16 ImageNet-21k (augreg), the VPT/L2P papers' backbone; timm weights or a local file")
def _vit_b16_in21k(weights: str | None) -> VisionBackbone:
    return timm_vit("vit_base_patch16_224.augreg_in21k", weights, "vit_base_patch16_224.augreg_in21k")


# --------------------------------------------------------------------------------------------- open_clip
def open_clip_model(config_name: str, weights: str | None, tokenizer: Callable | None, name: str,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    wrapper: type[nn.Module] = ClipBackbone) -> nn.Module:
    """An open_clip model by config name; weights are open_clip's `pretrained=` tag or a local file.
    `wrapper`: `ClipBackbone` for dual encoders, `CocaBackbone` for CoCa configs."""
    import open_clip

    pretrained = None if weights == "none" else weights
    model = open_clip.create_model(config_name, pretrained=pretrained)
    if pretrained is None and hasattr(model, "text_decoder"):
        init_coca_decoder(model.text_decoder)
    model.eval()
    tokenizer = tokenizer or open_clip.get_tokenizer(config_name)
    mean = mean or getattr(model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
    std = std or getattr(model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
    return wrapper(model, tokenizer, mean, std, name)


def embedded_clip(stem: str, weights: str | None, wrapper: type[nn.Module] = ClipBackbone) -> nn.Module:
    """A CLIP-style model pretrained by the suite's recipe: config + vocabulary + weights shipped in
    `bench/models/checkpoints_data/`."""
    import open_clip

    config_path = CHECKPOINT_DIR / f"{stem}.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path} is missing: reinstall promptshift, or run `promptshift pretrain`")
    config = json.loads(config_path.read_text())
    vocab = json.loads((CHECKPOINT_DIR / f"{stem}.vocab.json").read_text())
    open_clip.add_model_config(config_path)
    tokenizer = CompactTokenizer(vocab, config["text_cfg"]["context_length"])
    file = None if weights == "none" else (weights or str(verified_checkpoint(stem)))
    return open_clip_model(stem, file if file else "none", tokenizer, stem, GLYPH_MEAN, GLYPH_STD, wrapper)


@register_backbone("clip_glyph_tiny", "clip", "CLIP-style dual encoder pretrained contrastively on glyph captions")
def _clip_glyph_tiny(weights: str | None) -> ClipBackbone:
    return embedded_clip("clip_glyph_tiny", weights)


@register_backbone("clip_test_micro", "clip", "random CLIP-style model for fast tests (widths 32)")
def _clip_test_micro(weights: str | None) -> ClipBackbone:
    from open_clip.model import CLIP

    from bench.models.specs import caption_vocabulary

    vocab = caption_vocabulary()
    model = CLIP(embed_dim=32, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
                 text_cfg=dict(context_length=32, vocab_size=len(vocab) + 4, width=32, heads=2, layers=2))
    if weights not in (None, "none"):
        from safetensors.torch import load_file
        model.load_state_dict(load_file(weights))
    return ClipBackbone(model.eval(), CompactTokenizer(vocab, 32), GLYPH_MEAN, GLYPH_STD, "clip_test_micro")


@register_backbone("coca_glyph_tiny", "coca",
                   "CoCa encoder-decoder (open_clip) pretrained on glyph captions: contrastive + captioning loss")
def _coca_glyph_tiny(weights: str | None) -> CocaBackbone:
    return embedded_clip("coca_glyph_tiny", weights, CocaBackbone)


@register_backbone("coca_test_micro", "coca", "random CoCa for fast tests (widths 32)")
def _coca_test_micro(weights: str | None) -> CocaBackbone:
    from open_clip.coca_model import CoCa

    from bench.models.specs import caption_vocabulary, coca_config

    vocab = caption_vocabulary()
    config = coca_config(len(vocab) + 4, width=32, vision_width=32, layers=2)
    model = CoCa(**{k: v for k, v in config.items() if k != "custom_text"})
    init_coca_decoder(model.text_decoder)
    if weights not in (None, "none"):
        from safetensors.torch import load_file
        model.load_state_dict(load_file(weights))
    tokenizer = CompactTokenizer(vocab, config["text_cfg"]["context_length"])
    return CocaBackbone(model.eval(), tokenizer, GLYPH_MEAN, GLYPH_STD, "coca_test_micro")


@register_backbone("coca_ViT-B-32.laion2b_s13b_b90k", "coca",
                   "open_clip CoCa ViT-B/32 (LAION-2B); open_clip weights tag or a local file")
def _coca_b32(weights: str | None) -> CocaBackbone:
    return open_clip_model("coca_ViT-B-32", weights or "laion2b_s13b_b90k", None, "coca_ViT-B-32.laion2b_s13b_b90k",
                           wrapper=CocaBackbone)


@register_backbone("ViT-B-16.openai", "clip", "OpenAI CLIP ViT-B/16 (the CoOp/CoCoOp/DAPL papers' backbone)")
def _clip_b16_openai(weights: str | None) -> ClipBackbone:
    return open_clip_model("ViT-B-16", weights or "openai", None, "ViT-B-16.openai")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
