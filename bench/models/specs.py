"""Architectures and vocabularies of the embedded CLIP and CoCa models: what a checkpoint is, shared by the
loader (`bench.models.backbones`) and the recipe that trains it (`bench.models.pretrain`)."""
from __future__ import annotations

from bench.models.text import CompactTokenizer, prompt_name
from scenarios import glyphs

# Caption templates for contrastive pretraining. `{style}` is a word about the face, `{name}` the class name.
CAPTION_TEMPLATES = ("a photo of a {name}.", "a {style} {name}.", "the symbol {name}.",
                     "a rendering of a {name} in a {style} font.", "a picture of the {name}.", "{name}.")


FONT_STYLES = {"Bold": "bold", "Oblique": "slanted", "Italic": "italic", "Mono": "monospace", "Sans": "sans-serif",
               "Serif": "serif", "cm": "classic", "STIX": "book"}


def font_style(font: str) -> str:
    words = [word for key, word in FONT_STYLES.items() if key in font]
    return " ".join(words[:2]) or "plain"


def caption_vocabulary() -> list[str]:
    """Every text the embedded CLIP may read: captions, CoOp placeholders and the usual prompt templates."""
    names = [prompt_name(c.name) for c in glyphs.GLYPH_CLASSES]
    styles = set(FONT_STYLES.values()) | {"plain"}
    texts = [t.format(name=n, style=s) for t in CAPTION_TEMPLATES for n in names for s in styles]
    texts += ["X", "a photo of a", "a clean print of a", "an outline sketch of a", "a textured image of a",
              "a noisy image of a", "handwritten"]
    return CompactTokenizer.build_vocab(texts)


def clip_config(vocab_size: int) -> dict:
    return {"embed_dim": 64,
            "vision_cfg": {"image_size": 32, "layers": 6, "width": 96, "patch_size": 8, "head_width": 32,
                           "mlp_ratio": 4.0},
            "text_cfg": {"context_length": 32, "vocab_size": vocab_size, "width": 64, "heads": 2, "layers": 3}}


def coca_config(vocab_size: int, width: int = 64, vision_width: int = 96, layers: int = 3) -> dict:
    """A small open_clip CoCa: the embedded CLIP's image tower with attentional pooling (16 queries: the image
    tokens the decoder reads), `layers` unimodal text layers and `layers` multimodal decoder layers. Context 20
    holds the longest pretraining caption (18 tokens) plus start and end."""
    return {"embed_dim": width, "custom_text": True,
            "vision_cfg": {"image_size": 32, "layers": 2 * layers, "width": vision_width, "patch_size": 8,
                           "head_width": 32, "mlp_ratio": 4.0, "attentional_pool": True, "attn_pooler_heads": 2,
                           "attn_pooler_queries": 16, "output_tokens": True},
            "text_cfg": {"context_length": 20, "vocab_size": vocab_size, "width": width, "heads": 2,
                         "layers": layers, "embed_cls": True, "output_tokens": True},
            "multimodal_cfg": {"context_length": 20, "vocab_size": vocab_size, "width": width, "heads": 2,
                               "layers": layers, "attn_pooler_heads": 2}}
