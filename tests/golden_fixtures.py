"""What the golden-value tests share: reading a fixture of tests/golden/ (safetensors + JSON, never pickle) and
rebuilding the tiny official model it was computed on (a CLIP in OpenAI's layout, or timm's ViT)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.models.backbones import ClipBackbone, VisionBackbone

GOLDEN = Path(__file__).parent / "golden"
TOL = dict(atol=1e-5, rtol=1e-4)


def load(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The fixture's tensors and its JSON (repository, commit, patches, setting)."""
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / f"{name}.safetensors")), json.loads((GOLDEN / f"{name}.json").read_text())


def tiny_clip(tensors: dict[str, torch.Tensor], s: dict) -> ClipBackbone:
    """The fixture's CLIP: its weights, and the token-embedding rows of the words its prompts use."""
    import open_clip

    model = open_clip.model.CLIP(**s["clip"])
    state = {k[5:]: v for k, v in tensors.items() if k.startswith("clip.")}
    table = torch.zeros_like(model.token_embedding.weight)
    table[tensors["token_ids"].long()] = tensors["token_rows"]
    state["token_embedding.weight"] = table
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= {"attn_mask"} and not unexpected
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=s["clip"]["text_cfg"]["context_length"])
    return ClipBackbone(model.eval(), tokenizer, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "golden")


def official_vit(tensors: dict[str, torch.Tensor], s: dict) -> VisionBackbone:
    """timm's ViT with the official model's weights; raw [0, 1] pixels in (mean 0, std 1), as the official code."""
    import timm

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=s["image"],
                              patch_size=s["patch"], embed_dim=s["embed_dim"], depth=s["depth"],
                              num_heads=s["heads"], mlp_ratio=2.0)
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vit.")})
    return VisionBackbone(model.eval(), "timm", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), s["image"], "golden")
