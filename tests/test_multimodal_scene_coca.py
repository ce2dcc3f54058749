"""The embedded scene CoCa (bench.multimodal.pretrain / scene_model): its file matches the manifest's sha256, its
pretraining scenes are disjoint from every benchmark scene, and it loads with the vocabulary the grammar gives."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.models.checkpoints import CHECKPOINT_DIR, sha256_of
from bench.multimodal.pretrain import PRETRAIN_SPLIT, SCENE_ARCH, pretraining_scene_ids, pretraining_scenes
from bench.multimodal.scene_model import SCENE_COCA, load_scene_coca, scene_coca_files
from scenarios import glyphs
from scenarios.multimodal.scenes import SPLITS, render_scene
from scenarios.multimodal.streams import build_split, domain_incremental_stream, task_incremental_stream

BENCH_SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def entry():
    return json.loads((CHECKPOINT_DIR / "MANIFEST.json").read_text())[SCENE_COCA]


def test_checkpoint_matches_its_manifest(entry):
    assert sha256_of(CHECKPOINT_DIR / f"{SCENE_COCA}.safetensors") == entry["sha256"]
    assert entry["data"]["split"] == PRETRAIN_SPLIT and entry["data"]["fonts"] == "pretrain"
    assert set(entry["data"]["domains"]) == {"clean", "noisy"}
    config, _ = scene_coca_files()
    assert config == entry["config"] == SCENE_ARCH
    assert {"lr", "epochs", "batch_size", "seed"} <= set(entry["recipe"])


def test_pretraining_scenes_are_disjoint_from_the_benchmark(entry):
    # The generators: every scene's random streams start with (seed, split index, scene index); the pretraining
    # split's index is none of the benchmark splits', so no seed reaches a pretraining stream.
    assert SPLITS.index(PRETRAIN_SPLIT) not in {SPLITS.index(s) for s in BENCH_SPLITS}
    # The faces: pretraining fonts only, none of them a benchmark font.
    assert not set(glyphs.PRETRAIN_FONTS) & set(glyphs.BENCH_FONTS)
    ids = set(pretraining_scene_ids(entry["data"]["scene_seed"], entry["data"]["scenes"]))
    assert len(ids) == entry["data"]["scenes"] and all(i.startswith(f"{PRETRAIN_SPLIT}-") for i in ids)
    bench_ids = {e.scene_id for seed in (0, 1, entry["data"]["scene_seed"]) for kind in ("caption", "vqa")
                 for split in BENCH_SPLITS for e in build_split(kind, split, seed, 6)}
    bench_ids |= {e.scene_id for exp in domain_incremental_stream("vqa", 0, n_train=2, n_val=1, n_test=1)
                  for e in exp.train + exp.val + exp.test}
    bench_ids |= {e.scene_id for exp in task_incremental_stream(0, n_train=2, n_val=1, n_test=1)
                  for e in exp.train + exp.val + exp.test}
    assert bench_ids and not ids & bench_ids
    # The pixels: no pretraining image equals a benchmark image (same seed, same indices, same domain).
    data = pretraining_scenes(entry["data"]["scene_seed"], 12)
    assert data.scene_ids == tuple(pretraining_scene_ids(entry["data"]["scene_seed"], 12))
    bench = {render_scene(entry["data"]["scene_seed"], split, i, domain).image.tobytes()
             for split in BENCH_SPLITS for i in range(12) for domain in ("clean", "noisy")}
    assert not {img.tobytes() for img in data.images} & bench


def test_loads_with_the_grammar_vocabulary_and_captions_unseen_fonts(entry):
    from bench.multimodal.loop import evaluate
    from bench.multimodal.seq2seq import DecodeSettings
    from bench.multimodal.vocab import scene_vocabulary

    model = load_scene_coca()
    assert model.tokenizer.vocab == scene_vocabulary()  # a changed grammar needs a re-pretrained checkpoint
    from bench.multimodal.pretrain import alt_text_caption_examples

    test = alt_text_caption_examples(0, "test", 16)  # the benchmark's test scenes, in the pretraining's grammar
    pretrained = evaluate(model, test, DecodeSettings(max_new_tokens=24))["cider"]
    random = evaluate(load_scene_coca(weights="none"), test, DecodeSettings(max_new_tokens=24))["cider"]
    assert pretrained > 0.2 and random < 0.05, (pretrained, random)
    # the benchmark's captioning references follow another guideline: well below what the checkpoint writes in its
    # own grammar before any method adapts it (the room the sanity check "untrained start" needs)
    start = evaluate(model, build_split("caption", "test", 0, 16), DecodeSettings(max_new_tokens=24))["cider"]
    assert start < pretrained / 2, (start, pretrained)
    with pytest.raises(ValueError, match="does not fit"):
        import tempfile

        from safetensors.numpy import save_file

        with tempfile.NamedTemporaryFile(suffix=".safetensors") as handle:
            save_file({"nothing": np.zeros(1, dtype=np.float32)}, handle.name)
            load_scene_coca(handle.name)
