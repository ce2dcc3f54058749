"""The recipe of the embedded scene CoCa (`scene_coca`): a short generative pretraining on scenes the benchmark
never draws, with the discipline of the other embedded checkpoints (bench.models.pretrain): seeded, a manifest
entry with the recipe, the data description, the file's sha256 and the measured quality.

Data, disjoint from the benchmark's by construction on two axes:
- the scenes come from the `pretrain` split of `scenarios.multimodal.scenes` (its own seed stream: no benchmark
  split, stream or task draws from it, so no layout, glyph geometry or styling is shared);
- the glyphs are drawn in the pretraining fonts only (`fonts="pretrain"`, never a bench font), in the
  pretraining domains (clean, noisy; outline and texture stay unseen, as for the other checkpoints).

Objective: CoCa's (Yu et al., 2022; the `coca_glyph_tiny` recipe): a contrastive loss between the pooled image
and caption features plus CAPTION_WEIGHT times OFA's generative loss on captioning (the caption instruction, a
random one of the scene's five captions in the pretraining corpus's grammar, `annotations.alt_text_captions`, as
the target; the benchmark's captioning references follow another guideline, `annotations.captions`). Captioning
alone leaves a small CoCa trained from scratch on the language-model plateau for hundreds of steps (the same
caption whatever the image: measured, 500 steps, patch 16); the contrastive term and 8-pixel patches (4 x 4 per
glyph cell) make the image encoder discriminative within the first hundred steps. Captioning teaches the decoder
the scene's objects, colours and places and the grammar's words; VQA, entailment and grounding stay new tasks for
the benchmark's methods to learn (as SNLI-VE is for OFA), and the benchmark's captioning runs on unseen fonts and
scores another reference style.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.models.pretrain import CAPTION_WEIGHT, PRETRAIN_DOMAINS, Recipe, multi_positive_clip_loss, save, train_epochs
from bench.multimodal.scene_model import SCENE_COCA

__all__ = ["PRETRAIN_SPLIT", "SCENE_ARCH", "SCENE_RECIPE", "SceneData", "alt_text_caption_examples",
           "pretrain_scene_coca", "pretraining_scene_ids", "pretraining_scenes", "scene_coca_quality"]

PRETRAIN_SPLIT = "pretrain"
SCENE_ARCH = {"image_size": 64, "patch_size": 8, "width": 64, "layers": 2, "context_length": 48}
SCENE_SCENES = 1200  # scenes in the pretraining set (half clean, half noisy)
SCENE_RECIPE = Recipe(seed=0, per_font=None, epochs=8, batch_size=16, lr=1e-3, weight_decay=0.05, warmup_epochs=1)


@dataclass(frozen=True)
class SceneData:
    """The pretraining set: images uint8 `(N, H, W, 3)`, each scene's reference captions, and the scene ids."""

    images: np.ndarray
    captions: tuple[tuple[str, ...], ...]
    scene_ids: tuple[str, ...]
    domains: tuple[str, ...]


def pretraining_scenes(seed: int, n: int = SCENE_SCENES) -> SceneData:
    """Scenes 0 .. n-1 of the `pretrain` split in the pretraining fonts, alternating the pretraining domains."""
    from scenarios.multimodal import annotations
    from scenarios.multimodal.scenes import render_scene

    scenes = [render_scene(seed, PRETRAIN_SPLIT, i, PRETRAIN_DOMAINS[i % len(PRETRAIN_DOMAINS)], fonts="pretrain")
              for i in range(n)]
    captions = tuple(tuple(annotations.alt_text_captions(s)) for s in scenes)
    return SceneData(np.stack([s.image for s in scenes]), captions, tuple(s.scene_id for s in scenes),
                     tuple(s.domain for s in scenes))


def pretraining_scene_ids(seed: int = SCENE_RECIPE.seed, n: int = SCENE_SCENES) -> list[str]:
    """The ids of the pretraining scenes (cheap: no rendering)."""
    return [f"{PRETRAIN_SPLIT}-{seed}-{i}" for i in range(n)]


def pretrain_scene_coca(recipe: Recipe = SCENE_RECIPE, device: torch.device | str = "cpu", n_scenes: int = SCENE_SCENES
                        ) -> dict:
    """Pretrain the scene CoCa from random initialisation and write it with its manifest entry."""
    import json

    from bench.core.seeding import seed_everything
    from bench.models.checkpoints import CHECKPOINT_DIR
    from bench.multimodal.seq2seq import encode_examples, scene_coca, sequence_loss
    from bench.multimodal.vocab import SceneTokenizer, scene_vocabulary
    from scenarios.multimodal.tasks import CAPTION_INSTRUCTION

    seed_everything(recipe.seed)
    arch = dict(SCENE_ARCH)
    vocab = scene_vocabulary()
    tokenizer = SceneTokenizer(vocab, int(arch.pop("context_length")))
    backbone = scene_coca(tokenizer, seed=recipe.seed, **arch).to(device)
    data = pretraining_scenes(recipe.seed, n_scenes)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    pick = np.random.default_rng(recipe.seed)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        targets = [data.captions[i][int(pick.integers(len(data.captions[i])))] for i in index.tolist()]
        ids, mask = encode_examples(tokenizer, [CAPTION_INSTRUCTION] * len(targets), targets)
        pixels = images[index].to(device).float() / 255.0
        caption = sequence_loss(backbone, pixels, ids.to(device), mask.to(device))
        model = backbone.model
        contrastive = multi_positive_clip_loss(model.encode_image(backbone.visual.preprocess(pixels)),
                                               model.encode_text(tokenizer(targets).to(device)), index.to(device),
                                               model.logit_scale.exp().clamp(max=100.0))
        return contrastive + CAPTION_WEIGHT * caption

    backbone.train()
    train_epochs(recipe, list(backbone.parameters()), len(data.scene_ids), batch_loss, "pretrain scene coca")
    backbone.eval()
    CHECKPOINT_DIR.mkdir(exist_ok=True)
    (CHECKPOINT_DIR / f"{SCENE_COCA}.json").write_text(json.dumps(SCENE_ARCH, indent=2) + "\n")
    (CHECKPOINT_DIR / f"{SCENE_COCA}.vocab.json").write_text(json.dumps(vocab) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.model.state_dict().items()}
    data_description = {"split": PRETRAIN_SPLIT, "scenes": n_scenes, "scene_seed": recipe.seed,
                        "fonts": "pretrain", "domains": list(PRETRAIN_DOMAINS), "objective":
                        f"CoCa: contrastive (image vs caption, in-batch) + {CAPTION_WEIGHT} x captioning "
                        "(OFA's caption instruction, one random reference of five per step, teacher-forced "
                        "cross-entropy on the target tokens)"}
    return save(SCENE_COCA, state, recipe, {"config": SCENE_ARCH, "vocabulary": f"{SCENE_COCA}.vocab.json",
                                            "data": data_description,
                                            "quality": scene_coca_quality(backbone)})


def alt_text_caption_examples(seed: int, split: str, n_scenes: int) -> list:
    """Captioning examples of scenes 0 .. n-1 of `split` (bench fonts, clean) scored against the pretraining
    grammar's captions (`annotations.alt_text_captions`): what the checkpoint was taught to write."""
    from scenarios.multimodal import annotations
    from scenarios.multimodal.scenes import render_scene
    from scenarios.multimodal.tasks import CAPTION_INSTRUCTION, Example

    scenes = [render_scene(seed, split, i) for i in range(n_scenes)]
    return [Example("caption", s.scene_id, s.image, CAPTION_INSTRUCTION, refs[0], tuple(refs))
            for s in scenes for refs in [annotations.alt_text_captions(s)]]


def scene_coca_quality(backbone) -> dict[str, float]:
    """Held-out captioning of the benchmark's test scenes (bench fonts, clean, seed 0, 32 scenes; greedy) in the
    pretraining's caption grammar: what the checkpoint can do before any method trains it. (The benchmark's
    captioning task scores another reference style, `annotations.captions`, which the checkpoint never wrote.)"""
    from bench.multimodal.loop import evaluate
    from bench.multimodal.seq2seq import DecodeSettings

    scores = evaluate(backbone, alt_text_caption_examples(0, "test", 32), DecodeSettings(max_new_tokens=24))
    return {"caption_cider_bench_test": scores["cider"], "caption_bleu4_bench_test": scores["bleu4"]}
