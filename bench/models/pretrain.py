"""The suite's own pretraining recipe for the embedded backbones (pretraining fonts only, never a bench font).

- `vit_glyph_tiny`: a timm ViT trained with labels (cross-entropy) on the pretraining fonts.
- `clip_glyph_tiny`: an open_clip dual encoder trained contrastively on (glyph image, caption) pairs.
- `coca_glyph_tiny`: an open_clip CoCa encoder-decoder trained on the same pairs with CoCa's contrastive plus
  captioning loss.

Each writes `<name>.safetensors` into the checkpoint folder (`bench.models.checkpoints.CHECKPOINT_DIR`: the one
`promptshift pretrain --out` chose, ./checkpoints by default; in a checkout, `--out bench/models/checkpoints_data`
rewrites the shipped ones) and records the recipe, its seed, the file's sha256 and the measured quality (`bench.models.quality`)
in its `MANIFEST.json`. The default benchmark only ever loads these files.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from bench.core.device import autocast, select_device
from bench.core.seeding import seed_everything
from bench.models.backbones import GLYPH_VIT_ARCH, create_backbone
from bench.models.checkpoints import CHECKPOINT_DIR, sha256_of, update_manifest
from bench.models.specs import CAPTION_TEMPLATES, caption_vocabulary, clip_config, coca_config, font_style
from bench.models.text import prompt_name
from scenarios import glyphs
from scenarios.cache import DATA_VERSION

PRETRAIN_DOMAINS = ("clean", "noisy")  # outline and texture stay unseen: the benchmark's style shifts are real


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    per_font: dict | None = None  # domain -> samples per (class, font)
    epochs: int = 12
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1


VIT_RECIPE = Recipe(per_font={"clean": 20, "noisy": 6})
CLIP_RECIPE = Recipe(per_font={"clean": 20, "noisy": 6}, epochs=14, batch_size=256, lr=1e-3)
COCA_RECIPE = Recipe(per_font={"clean": 20, "noisy": 6}, epochs=5, batch_size=256, lr=1e-3)  # warm-started
CAPTION_WEIGHT = 2.0  # CoCa's captioning-to-contrastive loss ratio (Yu et al., 2022, and open_clip's default)


def pretraining_data(recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (uint8 NCHW), labels and font indices from the pretraining fonts only."""
    classes = list(range(len(glyphs.GLYPH_CLASSES)))
    parts = [glyphs.load_glyph_set(classes, glyphs.PRETRAIN_FONTS, domain, per_font, recipe.seed + i)
             for i, (domain, per_font) in enumerate(sorted(recipe.per_font.items()))]
    images = np.concatenate([p.images for p in parts]).transpose(0, 3, 1, 2)
    labels = np.concatenate([p.labels for p in parts])
    fonts = np.concatenate([p.fonts for p in parts])
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels).long(), torch.from_numpy(fonts)


def _schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) /
                                                                                      max(1, steps - warmup))))


def train_epochs(recipe: Recipe, params: list[torch.nn.Parameter], n: int,
                 batch_loss: Callable[[torch.Tensor], torch.Tensor], desc: str) -> None:
    """The loop every recipe shares: AdamW, linear warm-up then cosine, seeded shuffles; `batch_loss(index)`
    computes one batch's loss from the sample indices."""
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    scheduler = _schedule(optimizer, steps_per_epoch * recipe.epochs, steps_per_epoch * recipe.warmup_epochs)
    generator = torch.Generator().manual_seed(recipe.seed)
    for epoch in tqdm(range(recipe.epochs), desc=desc, unit="epoch"):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, recipe.batch_size):
            loss = batch_loss(order[start:start + recipe.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        tqdm.write(f"{desc} epoch {epoch + 1}: loss {loss.item():.3f}")


def pretrain_vit(recipe: Recipe, device: torch.device) -> dict:
    seed_everything(recipe.seed)
    images, labels, _ = pretraining_data(recipe)
    backbone = create_backbone("vit_glyph_tiny", weights="none").to(device)
    head = torch.nn.Linear(backbone.num_features, len(glyphs.GLYPH_CLASSES)).to(device)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        x = images[index].to(device).float() / 255
        with autocast(device):
            return F.cross_entropy(head(backbone(x)), labels[index].to(device), label_smoothing=0.1)

    backbone.train()
    train_epochs(recipe, list(backbone.parameters()) + list(head.parameters()), len(labels), batch_loss,
                 "pretrain vit")
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.encoder.state_dict().items()}
    return save("vit_glyph_tiny", state, recipe, {"arch": GLYPH_VIT_ARCH})


def multi_positive_clip_loss(image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor,
                             scale: torch.Tensor) -> torch.Tensor:
    """Symmetric contrastive loss where every caption of the same class is a positive.

    A batch of 256 glyphs over 67 classes holds many same-class pairs; the usual diagonal-only CLIP loss (as in
    open_clip's ClipLoss) would push those apart, so targets spread uniformly over same-class captions (UniCL)."""
    logits = scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()
    same = (labels[:, None] == labels[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


def write_clip_files(stem: str, vocab: list[str], config: dict) -> None:
    CHECKPOINT_DIR.mkdir(exist_ok=True)
    (CHECKPOINT_DIR / f"{stem}.json").write_text(json.dumps(config, indent=2) + "\n")
    (CHECKPOINT_DIR / f"{stem}.vocab.json").write_text(json.dumps(vocab) + "\n")


class CaptionSampler:
    """Seeded captions for pretraining images: a random template around the class name and the font's style."""

    def __init__(self, labels: torch.Tensor, fonts: torch.Tensor, seed: int) -> None:
        self.labels, self.fonts = labels, fonts
        self.names = [prompt_name(c.name) for c in glyphs.GLYPH_CLASSES]
        self.styles = [font_style(f) for f in glyphs.PRETRAIN_FONTS]
        self.rng = np.random.default_rng(seed)

    def __call__(self, index: torch.Tensor) -> list[str]:
        return [CAPTION_TEMPLATES[self.rng.integers(len(CAPTION_TEMPLATES))].format(
            name=self.names[int(self.labels[i])], style=self.styles[int(self.fonts[i])]) for i in index]


def pretrain_clip(recipe: Recipe, device: torch.device) -> dict:
    seed_everything(recipe.seed)
    vocab = caption_vocabulary()
    write_clip_files("clip_glyph_tiny", vocab, clip_config(len(vocab) + 4))
    images, labels, fonts = pretraining_data(recipe)
    clip = create_backbone("clip_glyph_tiny", weights="none").to(device)
    captions = CaptionSampler(labels, fonts, recipe.seed)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        x = images[index].to(device).float() / 255
        with autocast(device):
            return multi_positive_clip_loss(clip.encode_image(x), clip.encode_text(captions(index)),
                                            labels[index].to(device), clip.logit_scale)

    clip.train()
    train_epochs(recipe, list(clip.model.parameters()), len(labels), batch_loss, "pretrain clip")
    state = {k: v.detach().cpu().contiguous() for k, v in clip.model.state_dict().items()}
    return save("clip_glyph_tiny", state, recipe, {"config": clip_config(len(vocab) + 4)})


def pretrain_coca(recipe: Recipe, device: torch.device) -> dict:
    """CoCa's objective (Yu et al., 2022): contrastive loss on the pooled features plus CAPTION_WEIGHT times the
    captioning loss (teacher-forced next-token cross-entropy, padding ignored)."""
    seed_everything(recipe.seed)
    vocab = caption_vocabulary()
    config = coca_config(len(vocab) + 4)
    write_clip_files("coca_glyph_tiny", vocab, config)
    images, labels, fonts = pretraining_data(recipe)
    coca = create_backbone("coca_glyph_tiny", weights="none")
    warm = warm_start_from_clip(coca.model)
    coca = coca.to(device)
    captions = CaptionSampler(labels, fonts, recipe.seed)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        x = images[index].to(device).float() / 255
        ids = coca.tokenize(captions(index))
        with autocast(device):
            out = coca.model(coca.visual.preprocess(x), ids)
            contrastive = multi_positive_clip_loss(out["image_features"], out["text_features"],
                                                   labels[index].to(device), out["logit_scale"].clamp(max=100.0))
            caption = F.cross_entropy(out["logits"].permute(0, 2, 1).float(), out["labels"], ignore_index=coca.pad_id)
        return contrastive + CAPTION_WEIGHT * caption

    coca.train()
    train_epochs(recipe, list(coca.model.parameters()), len(labels), batch_loss, "pretrain coca")
    state = {k: v.detach().cpu().contiguous() for k, v in coca.model.state_dict().items()}
    return save("coca_glyph_tiny", state, recipe, {"config": config, "caption_weight": CAPTION_WEIGHT,
                                                    "warm_start": f"clip_glyph_tiny ({len(warm)} tensors)"})


def warm_start_from_clip(model: torch.nn.Module) -> list[str]:
    """Copy every tensor of the committed `clip_glyph_tiny` whose name and shape CoCa shares (the image trunk, the
    text layers and token embedding), as CoCa trainers start from pretrained towers. That CLIP saw only the
    pretraining fonts, so the benchmark fonts stay unseen; it makes the CPU recipe a few epochs instead of many."""
    from safetensors.torch import load_file

    from bench.models.checkpoints import verified_checkpoint

    clip = load_file(str(verified_checkpoint("clip_glyph_tiny")))
    own = model.state_dict()
    shared = {k: v for k, v in clip.items() if k in own and own[k].shape == v.shape}
    mapped = {"text." + k: v for k, v in clip.items()  # CLIP keeps its text tower at top level, CoCa in `.text`
              if "text." + k in own and own["text." + k].shape == v.shape}
    shared.update(mapped)
    model.load_state_dict(shared, strict=False)
    return sorted(shared)


def save(stem: str, state: dict[str, torch.Tensor], recipe: Recipe, extra: dict) -> dict:
    CHECKPOINT_DIR.mkdir(exist_ok=True)
    path = CHECKPOINT_DIR / f"{stem}.safetensors"
    save_file(state, str(path), metadata={"recipe": json.dumps(asdict(recipe)), "seed": str(recipe.seed)})
    entry = {"file": path.name, "sha256": sha256_of(path), "seed": recipe.seed, "recipe": asdict(recipe),
             "data_version": DATA_VERSION, "pretrain_fonts": list(glyphs.PRETRAIN_FONTS), "pretrain_domains": list(PRETRAIN_DOMAINS),
             "created": time.strftime("%Y-%m-%d"), **extra}
    update_manifest(stem, entry)
    return entry


def _require_writable(folder: Path) -> None:
    # Checked before hours of pretraining, not at the first save: an installed package may sit in a read-only
    # site-packages, and the checkpoints are package data (the loader only looks there).
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write the checkpoints to {folder}: choose a writable folder with "
                              f"`promptshift pretrain --out DIR`")


def pretrain_all(only: Sequence[str] | None = None, device: str = "auto") -> None:
    from bench.models.quality import measure_quality

    from bench.models.checkpoint_out import check_families

    wanted = check_families(only)
    _require_writable(CHECKPOINT_DIR)
    torch_device = select_device(device)
    if "vit" in wanted:
        pretrain_vit(VIT_RECIPE, torch_device)
    if "clip" in wanted:
        pretrain_clip(CLIP_RECIPE, torch_device)
    if "coca" in wanted:
        pretrain_coca(COCA_RECIPE, torch_device)
    if "scene_coca" in wanted:  # the multimodal tasks' encoder-decoder (its quality is measured as it is saved)
        from bench.multimodal.pretrain import SCENE_RECIPE, pretrain_scene_coca

        pretrain_scene_coca(SCENE_RECIPE, torch_device)
    measure_quality(wanted)
