"""Quality of the embedded backbones on the benchmark fonts (never seen in pretraining).

    python -m bench.models.quality        re-measure from the committed checkpoints and print

- ViT: linear-probe accuracy (scikit-learn logistic regression on frozen features) over all glyph classes.
- CLIP: zero-shot accuracy with the template "a photo of a {class}." over all glyph classes.
- CoCa: zero-shot accuracy by generation: the class whose caption "a photo of a {class}." the decoder finds most
  likely (constrained decoding over the class names), and how often free greedy decoding names the true class.
"""
from __future__ import annotations

import json
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from bench.models.backbones import create_backbone
from bench.models.text import prompt_name
from scenarios import glyphs

PROBE_TRAIN_PER_FONT, TEST_PER_FONT, SEED = 8, 4, 1234
TEMPLATE = "a photo of a {}."


def _bench(per_font: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    data = glyphs.load_glyph_set(list(range(len(glyphs.GLYPH_CLASSES))), glyphs.BENCH_FONTS, "clean", per_font, seed)
    x = torch.from_numpy(np.ascontiguousarray(data.images.transpose(0, 3, 1, 2))).float() / 255
    return x, data.labels


@torch.no_grad()
def _features(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)]).numpy()


def vit_linear_probe() -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    vit = create_backbone("vit_glyph_tiny")
    x_train, y_train = _bench(PROBE_TRAIN_PER_FONT, SEED)
    x_test, y_test = _bench(TEST_PER_FONT, SEED + 1)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    probe.fit(_features(vit, x_train), y_train)
    return float(probe.score(_features(vit, x_test), y_test))


@torch.no_grad()
def clip_zero_shot() -> float:
    clip = create_backbone("clip_glyph_tiny").eval()
    x_test, y_test = _bench(TEST_PER_FONT, SEED + 1)
    text = F.normalize(clip.encode_text([TEMPLATE.format(prompt_name(c.name)) for c in glyphs.GLYPH_CLASSES]), dim=-1)
    image = F.normalize(torch.from_numpy(_features(clip.visual, x_test)), dim=-1)
    return float(((image @ text.t()).argmax(-1).numpy() == y_test).mean())


@torch.no_grad()
def coca_zero_shot() -> dict[str, float]:
    coca = create_backbone("coca_glyph_tiny").eval()
    x_test, y_test = _bench(TEST_PER_FONT, SEED + 1)
    captions = [TEMPLATE.format(prompt_name(c.name)) for c in glyphs.GLYPH_CLASSES]
    ids = coca.tokenize(captions)
    text_tokens = coca.text_tokens(ids)
    ranked, generated = [], []
    for i in range(0, len(x_test), 128):
        image_tokens = coca.image_tokens(x_test[i:i + 128])
        ranked.append(coca.caption_scores(image_tokens, ids, text_tokens).argmax(-1))
        generated += coca.generate(x_test[i:i + 128])
    # Free generation uses whichever pretraining template it likes best; it counts when the one class name it
    # writes is the true one (names compared as the tokenizer writes them, as whole words).
    names = [" " + coca.tokenizer.decode(coca.tokenize([prompt_name(c.name)])[0, 1:].tolist()) + " "
             for c in glyphs.GLYPH_CLASSES]
    named = [{j for j, name in enumerate(names) if name in f" {text} "} for text in generated]
    named = [{j for j in found if not any(k != j and names[j] in names[k] for k in found)} for found in named]
    right = np.array([found == {y} for found, y in zip(named, y_test)])
    return {"zero_shot_by_caption_likelihood_bench_fonts": float((torch.cat(ranked).numpy() == y_test).mean()),
            "greedy_generation_names_true_class_bench_fonts": float(right.mean())}


def measure_quality(which: Iterable[str] = ("vit", "clip", "coca")) -> dict[str, float | dict[str, float]]:
    from bench.models.checkpoints import update_manifest

    out = {}
    if "vit" in which:
        out["vit_glyph_tiny"] = vit_linear_probe()
        update_manifest("vit_glyph_tiny", {"quality": {"linear_probe_bench_fonts": out["vit_glyph_tiny"]}})
    if "clip" in which:
        out["clip_glyph_tiny"] = clip_zero_shot()
        update_manifest("clip_glyph_tiny", {"quality": {"zero_shot_bench_fonts": out["clip_glyph_tiny"]}})
    if "coca" in which:
        out["coca_glyph_tiny"] = coca_zero_shot()
        update_manifest("coca_glyph_tiny", {"quality": out["coca_glyph_tiny"]})
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    measure_quality()
