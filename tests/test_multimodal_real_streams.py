"""The real-data multimodal stream (scenarios/multimodal/real_streams.py) on miniature copies of COCO Karpathy,
VQAv2 and SNLI-VE written here in their official formats: official splits only, no image in two splits of the
stream, seeded and exact sizes, images at the backbone's square size; a missing root or data set fails before
anything is decoded or trained; the data identity names the files, so changed data is a new cell."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.contract import mini_data
from bench.run.cell import CellConfig
from bench.run.data_identity import attach_data_identity
from scenarios.catalog import SCENARIOS, accepted_overrides, build_scenario
from scenarios.identity import data_identity, embedded_identity, preset_source
from scenarios.sources import source_status
from scenarios.sources.base import DataSourceError
from scenarios.structure import structure

SHARED = [6, 7, 8, 9]  # COCO val2014 images in captioning's restval (trains) and in VQAv2 val (tests here)
SIZES = {"n_train": 14, "n_val": 2, "n_test": 3, "image_size": 32}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    return mini_data.write_ofa_tasks(tmp_path / "data", shared=SHARED)


def _official_images(root: Path) -> dict[str, set[str]]:
    """Image file names of each official file the splits may come from."""
    coco = json.loads((root / "coco_karpathy" / "dataset_coco.json").read_text())["images"]
    by_split = lambda *names: {i["filename"] for i in coco if i["split"] in names}  # noqa: E731
    vqa = lambda split: {f"COCO_{split}2014_{q['image_id']:012d}.jpg" for q in json.loads(  # noqa: E731
        (root / "vqav2" / f"v2_OpenEnded_mscoco_{split}2014_questions.json").read_text())["questions"]}
    snli = lambda split: {json.loads(line)["Flickr30K_ID"] + ".jpg" for line in  # noqa: E731
                          (root / "snli_ve" / f"snli_ve_{split}.jsonl").read_text().splitlines()}
    return {"caption/train": by_split("train", "restval"), "caption/val": by_split("val"),
            "caption/test": by_split("test"), "vqa/train": vqa("train"), "vqa/val": vqa("train"),
            "vqa/test": vqa("val"), "entailment/train": snli("train"), "entailment/val": snli("dev"),
            "entailment/test": snli("test")}


def test_the_stream_draws_the_official_splits_with_no_image_in_two_of_them(root):
    scenario = build_scenario("mm_real_tasks", 0, **SIZES)
    assert scenario.kind == "multimodal_task_incremental"
    assert scenario.eval_names == ["caption/coco", "vqa/vqav2", "entailment/snli_ve"]
    official = _official_images(root)
    owner: dict[str, str] = {}
    for exp in scenario.experiences:
        for split in ("train", "val", "test"):
            examples = getattr(exp, split)
            assert len(examples) == SIZES[f"n_{split}"] and {e.kind for e in examples} == {exp.kind}
            images = {e.scene_id for e in examples}
            assert images <= official[f"{exp.kind}/{split}"], (exp.kind, split)  # test only from official test
            for image in images:  # an image belongs to one split of the whole stream
                assert owner.setdefault(image, split) == split, (image, exp.kind, split)
    caption, vqa, _ = scenario.experiences
    # VQAv2 tests on its official val images, which captioning's restval would otherwise train on
    assert {e.scene_id for e in vqa.test} <= {f"COCO_val2014_{i:012d}.jpg" for i in SHARED}
    # captioning trains on one example per caption, is tested on one per image against all its captions
    assert all(e.target in e.references and len(e.references) == 2 for e in caption.train)
    assert len({e.scene_id for e in caption.test}) == len(caption.test)
    assert all(e.target == e.references[0] for e in caption.test)
    assert all(e.target in e.references for e in vqa.train + vqa.val + vqa.test)


def test_images_are_the_files_resized_to_the_backbone_square(root):
    scenario = build_scenario("mm_real_tasks", 1, **{**SIZES, "image_size": 20})
    example = scenario.experiences[2].test[0]
    assert example.image.shape == (20, 20, 3) and example.image.dtype == np.uint8
    with Image.open(root / "snli_ve" / "flickr30k_images" / example.scene_id) as image:
        expected = np.asarray(image.convert("RGB").resize((20, 20), Image.BICUBIC))
    assert np.array_equal(example.image, expected)


def test_the_draw_is_a_pure_function_of_the_seed(root):
    def draw(seed):
        scenario = build_scenario("mm_real_tasks", seed, **SIZES)
        return [(e.scene_id, e.target, e.instruction, e.image.tobytes()) for exp in scenario.experiences
                for split in ("train", "val", "test") for e in getattr(exp, split)]

    first = draw(0)
    from scenarios.catalog import _build_cached

    _build_cached.cache_clear()  # built again, not served from the memo
    assert draw(0) == first and draw(2) != first


def test_too_few_examples_and_grounding_are_refused(root):
    with pytest.raises(ValueError, match=r"caption test: 4 examples asked, 3 available"):
        build_scenario("mm_real_tasks", 0, **{**SIZES, "n_test": 4})
    with pytest.raises(ValueError, match="location tokens"):
        build_scenario("mm_real_tasks", 0, **SIZES, kinds=["caption", "grounding"])


def test_a_missing_root_or_data_set_fails_at_once_naming_the_path(root, tmp_path, monkeypatch):
    from bench.run.runner import run_grid

    cell = CellConfig("mm_real_tasks", "seq2seq_finetune", "coca_bpe_test_micro", 0, {"steps": 1},
                      {"n_train": 2, "n_val": 1, "n_test": 1, "image_size": 32})
    shutil.rmtree(root / "vqav2")
    with pytest.raises(DataSourceError, match=r"vqa data set's folder .*vqav2 does not exist"):
        build_scenario("mm_real_tasks", 0, **SIZES)
    results = tmp_path / "results"
    with pytest.raises(DataSourceError, match=r"vqav2 does not exist"):  # the data identity, before any cell runs
        run_grid([cell], results, "cpu", show_progress=False)
    assert not list(results.glob("**/*.json"))
    from bench.run.plan import check_sources  # `promptshift run`'s early check names it too, as one message

    (problem,) = check_sources([cell])
    assert "vqav2 does not exist" in problem
    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path / "absent"))
    with pytest.raises(DataSourceError, match=r"data root .*absent does not exist"):
        build_scenario("mm_real_tasks", 0, **SIZES)
    monkeypatch.delenv("PROMPTSHIFT_DATA")
    with pytest.raises(DataSourceError, match="needs a data root: pass --data-root DIR or set PROMPTSHIFT_DATA"):
        attach_data_identity([cell])


def test_the_preset_is_listed_with_its_source_and_overrides(root):
    preset = SCENARIOS.get("mm_real_tasks")
    assert preset.source == "ofa_tasks" and preset.kind == "multimodal_task_incremental"
    assert accepted_overrides("mm_real_tasks") == ["kinds", "n_train", "n_val", "n_test", "image_size"]
    assert source_status("ofa_tasks") == (True, f"found in {root}")
    ok, line = structure("ofa_tasks")
    assert ok and "coco_karpathy: train 20, val 3, test 3" in line and "vqav2: train 16, test 8" in line
    shutil.rmtree(root / "snli_ve")
    assert source_status("ofa_tasks") == (False, f"missing snli_ve in {root}")


def test_the_data_identity_names_the_files_and_changes_with_them(root, tmp_path, monkeypatch):
    assert preset_source("mm_real_tasks") == ("ofa_tasks", {"kinds": ("caption", "vqa", "entailment")})
    assert embedded_identity("mm_real_tasks") is None and preset_source("mm_tasks") is None
    cell = CellConfig("mm_real_tasks", "seq2seq_finetune", "coca_bpe_test_micro", 0)
    before = attach_data_identity([cell])[0]
    assert before.data["source"] == "ofa_tasks" and before.data["records"] == 16 + 8 + len(SHARED) + 6 + 3 + 3
    assert data_identity("mm_real_tasks") == before.data  # the same data, the same identity
    elsewhere = tmp_path / "copy"
    shutil.copytree(root, elsewhere)
    monkeypatch.setenv("PROMPTSHIFT_DATA", str(elsewhere))
    moved = data_identity("mm_real_tasks")
    assert moved["fingerprint"] == before.data["fingerprint"] and moved["root"] != before.data["root"]
    dev = elsewhere / "snli_ve" / "snli_ve_dev.jsonl"  # one label corrected: same sizes of images, other data
    dev.write_text(dev.read_text().replace('"gold_label": "neutral"', '"gold_label": "entailment"', 1))
    changed = attach_data_identity([cell])[0]
    assert changed.data["fingerprint"] != before.data["fingerprint"] and changed.cell_id() != before.cell_id()
    only = data_identity("mm_real_tasks", {"kinds": ["caption", "entailment"]})
    mini_data.write_jpeg(elsewhere / "vqav2" / "val2014" / "extra.jpg", np.zeros((4, 4, 3), np.uint8))
    assert data_identity("mm_real_tasks", {"kinds": ["caption", "entailment"]}) == only  # VQAv2 is not read
    assert data_identity("mm_real_tasks")["fingerprint"] != changed.data["fingerprint"]  # an image added


def test_a_long_snli_ve_premise_is_cut_to_fit_the_real_decoders_context(root):
    # OFA cuts premise and hypothesis to their first words; without the cut one long Flickr30k caption made
    # encode_examples refuse the instruction and failed the whole cell
    from bench.multimodal.bpe_tokenizer import BpeSeq2SeqTokenizer
    from bench.multimodal.seq2seq import encode_examples
    from scenarios.multimodal.real_streams import ENTAILMENT_MAX_WORDS

    path = root / "snli_ve" / "snli_ve_test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    long = " ".join(["a very long caption about two people standing near a red car"] * 8)  # 96 words
    path.write_text("\n".join(json.dumps({**r, "sentence1": long, "sentence2": long}) for r in rows) + "\n")
    entailment = build_scenario("mm_real_tasks", 3, **SIZES).experiences[2]
    premise = entailment.test[0].instruction.split('"')[1].split()
    assert len(premise) == ENTAILMENT_MAX_WORDS
    tokenizer = BpeSeq2SeqTokenizer()
    encode_examples(tokenizer, [e.instruction for e in entailment.test], [e.target for e in entailment.test])
