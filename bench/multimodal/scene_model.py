"""The embedded scene CoCa: the sequence-to-sequence model the multimodal tasks run on by default.

`load_scene_coca()` builds `bench.multimodal.seq2seq.scene_coca` from the shipped config and vocabulary
(`checkpoints_data/scene_coca.json`, `scene_coca.vocab.json`) and loads `scene_coca.safetensors`, checked against
its sha256 in `MANIFEST.json` (the recipe and data that made it: `bench.multimodal.pretrain`). `weights="none"`
gives the same architecture randomly initialised; a path loads a local file of that architecture.
"""
from __future__ import annotations

import json

from bench.models.backbones import CocaBackbone

__all__ = ["SCENE_COCA", "load_scene_coca", "scene_coca_files"]

SCENE_COCA = "scene_coca"


def scene_coca_files() -> tuple[dict, list[str]]:
    """The shipped architecture (`scene_coca` keyword arguments plus `context_length`) and vocabulary."""
    from bench.models.checkpoints import CHECKPOINT_DIR

    config_path, vocab_path = CHECKPOINT_DIR / f"{SCENE_COCA}.json", CHECKPOINT_DIR / f"{SCENE_COCA}.vocab.json"
    for path in (config_path, vocab_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: reinstall promptshift, or run `promptshift pretrain "
                                    f"--only scene_coca` to recreate it")
    return json.loads(config_path.read_text()), json.loads(vocab_path.read_text())


def load_scene_coca(weights: str | None = None) -> CocaBackbone:
    """The scene CoCa in eval mode: the embedded pretrained checkpoint (None), random weights ("none") or a local
    safetensors file of the same architecture."""
    from safetensors.torch import load_file

    from bench.models.checkpoints import verified_checkpoint
    from bench.multimodal.seq2seq import scene_coca
    from bench.multimodal.vocab import SceneTokenizer

    config, vocab = scene_coca_files()
    arch = dict(config)
    tokenizer = SceneTokenizer(vocab, int(arch.pop("context_length")))
    backbone = scene_coca(tokenizer, **arch)
    if weights != "none":
        path = verified_checkpoint(SCENE_COCA) if weights is None else weights
        state = load_file(str(path))
        missing, unexpected = backbone.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} does not fit the scene CoCa: missing {sorted(missing)[:3]}, unexpected "
                             f"{sorted(unexpected)[:3]}")
    return backbone.eval()
