"""open_clip's CoCa as the sequence-to-sequence model of the multimodal tasks: the same pretrained encoder-decoder
`ofa_prompt_coca` classifies with (`coca_ViT-B-32.laion2b_s13b_b90k`), read and written in its own BPE vocabulary
(bench.multimodal.bpe_tokenizer) instead of the scene CoCa's word vocabulary.

- `load_open_clip_coca(name, weights)`: weights None are the name's open_clip pretrained tag, from open_clip's cache
  or downloaded (offline and not cached: an error saying to give a local file); a path is a local checkpoint of the
  same architecture (safetensors, .bin or .pt, through open_clip's own loader, strict); "none" is random.
- `TEST_COCA`: a random tiny CoCa with the real vocabulary (49408 ids) and context (76), for tests only: numbers on
  it say nothing about a method.

Referring expressions are refused on these models (`check_task_kinds`): OFA writes a box as four of 1000 location
tokens <bin_i> that it added to its vocabulary and pretrained on; CoCa's vocabulary has none, and spelling
coordinates as BPE digits would be another task with another decoder, not OFA's grounding.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.models.backbones import CocaBackbone, init_coca_decoder
from bench.multimodal.bpe_tokenizer import CONTEXT_LENGTH, BpeSeq2SeqTokenizer

__all__ = ["COCA_B32", "OPEN_CLIP_COCAS", "TEST_COCA", "check_task_kinds", "load_open_clip_coca", "tiny_coca_model"]

COCA_B32 = "coca_ViT-B-32.laion2b_s13b_b90k"
TEST_COCA = "coca_bpe_test_micro"


@dataclass(frozen=True)
class OpenClipCoca:
    """An open_clip CoCa by its model config (None: the test architecture) and default pretrained tag."""

    config: str | None
    tag: str | None


OPEN_CLIP_COCAS: dict[str, OpenClipCoca] = {COCA_B32: OpenClipCoca("coca_ViT-B-32", "laion2b_s13b_b90k"),
                                            TEST_COCA: OpenClipCoca(None, None)}


def tiny_coca_model(width: int = 32, image_size: int = 32):
    """A randomly initialised open_clip CoCa of the real BPE vocabulary and context, small everywhere else."""
    from open_clip.coca_model import CoCa

    text = {"context_length": CONTEXT_LENGTH, "vocab_size": BpeSeq2SeqTokenizer().vocab_size, "width": width,
            "heads": 2, "layers": 1}
    model = CoCa(embed_dim=width,
                 vision_cfg={"image_size": image_size, "layers": 2, "width": width, "patch_size": 8,
                             "head_width": 16, "attentional_pool": True, "attn_pooler_heads": 2,
                             "attn_pooler_queries": 8, "output_tokens": True},
                 text_cfg={**text, "embed_cls": True, "output_tokens": True},
                 multimodal_cfg={**text, "attn_pooler_heads": 2})
    init_coca_decoder(model.text_decoder)
    return model


def _random_model(name: str):
    import open_clip

    spec = OPEN_CLIP_COCAS[name]
    if spec.config is None:
        return tiny_coca_model()
    model = open_clip.create_model(spec.config, pretrained=None)
    init_coca_decoder(model.text_decoder)  # open_clip leaves a random CoCa's output projection uninitialised
    return model


def _pretrained_file(name: str, spec: OpenClipCoca) -> str:
    """open_clip's checkpoint of `spec.tag`: from its cache, else downloaded; a clear error when neither works."""
    from open_clip import pretrained as library

    try:
        return library.download_pretrained(library.get_pretrained_cfg(spec.config, spec.tag))
    except Exception as error:  # noqa: BLE001 - hub and URL downloads raise many types; each means "not here"
        raise RuntimeError(f"{name}: the open_clip weights {spec.config} / {spec.tag} are not in open_clip's cache "
                           f"and could not be downloaded ({type(error).__name__}: {error}); offline, give the "
                           f"suite `weights:` a local checkpoint file of {spec.config} (HF_HUB_OFFLINE=1 skips the "
                           f"download attempts)") from None


def load_open_clip_coca(name: str, weights: str | None = None) -> CocaBackbone:
    """The CoCa `name` in eval mode with the BPE tokenizer adapter (see the module docstring for `weights`)."""
    import open_clip

    if name not in OPEN_CLIP_COCAS:
        raise ValueError(f"unknown open_clip CoCa {name!r}; valid: {', '.join(OPEN_CLIP_COCAS)}")
    spec = OPEN_CLIP_COCAS[name]
    file = None  # found before the model is built: a missing file fails in a moment, not after a 250M-weight init
    if weights != "none" and (weights is not None or spec.tag is not None):
        if weights is not None and not Path(weights).expanduser().is_file():
            raise FileNotFoundError(f"{name}: weights file {weights} does not exist")
        file = str(Path(weights).expanduser()) if weights is not None else _pretrained_file(name, spec)
    model = _random_model(name)
    if file is not None:
        try:
            open_clip.load_checkpoint(model, file)  # strict: another architecture's file fails here
        except Exception as error:  # noqa: BLE001 - torch, safetensors and the unpickler each raise their own type
            raise ValueError(f"{file} does not load into {name}: {type(error).__name__}: "
                             f"{' '.join(str(error).split())[:400]}") from None
    tokenizer = BpeSeq2SeqTokenizer(model.text.context_length)
    if model.text.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"{name}: a vocabulary of {model.text.vocab_size} ids, not the BPE tokenizer's "
                         f"{tokenizer.vocab_size}")
    return CocaBackbone(model.eval(), tokenizer, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD, name)


def check_task_kinds(backbone: str, kinds: Sequence[str]) -> None:
    """Refuse task kinds an open_clip CoCa cannot express (see the module docstring); other backbones pass."""
    if backbone in OPEN_CLIP_COCAS and "grounding" in kinds:
        raise ValueError(f"referring expressions (grounding) cannot run on {backbone!r}: OFA writes boxes as location "
                         f"tokens <bin_i> added to its own vocabulary, and open_clip CoCa's BPE vocabulary has none; "
                         f"run grounding on the scene CoCa ('scene_coca'), whose vocabulary has them")
