"""Real-format loaders read miniature copies written here in the official formats; bad roots and files fail with
one clear error; the refs pickle is read by an unpickler that refuses anything but plain data."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from bench.contract import mini_data
from scenarios.multimodal.sources import (open_coco_karpathy, open_refcoco, open_snli_ve, open_vqav2,
                                          restricted_pickle_load)
from scenarios.sources.base import DataSourceError


def _jpg(path, size=(40, 30)):
    mini_data.write_jpeg(path, np.full((size[1], size[0], 3), 128, np.uint8))


def test_coco_karpathy(tmp_path):
    mini_data.write_coco_karpathy(tmp_path)  # one image each: train, restval, test, val
    train = open_coco_karpathy(tmp_path, "train")
    assert [r.record_id for r in train] == ["100/0", "101/0"]  # restval trains, as in Karpathy's usual split
    assert train[1].image == tmp_path / "val2014" / "COCO_val2014_000000000001.jpg"
    assert train[0].references == ("A cat number 0.", "A dog 0 .") and train[0].target == "A cat number 0."
    assert train[0].instruction == "what does the image describe?" and train[0].load_image().size == (40, 30)
    assert len(open_coco_karpathy(tmp_path, "train", per_caption=True)) == 4
    assert [r.record_id for r in open_coco_karpathy(tmp_path, "test")] == ["102/0"]
    (tmp_path / "val2014" / "COCO_val2014_000000000002.jpg").unlink()
    with pytest.raises(DataSourceError, match=r"image .*COCO_val2014_000000000002.jpg does not exist"):
        open_coco_karpathy(tmp_path, "test")
    with pytest.raises(DataSourceError, match="unknown split 'restval'"):
        open_coco_karpathy(tmp_path, "restval")


def test_vqav2(tmp_path):
    _jpg(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    questions = {"questions": [{"image_id": 42, "question": "What colour is the cat?", "question_id": 420},
                               {"image_id": 42, "question": "How many cats?", "question_id": 421}]}
    answers = ["black"] * 7 + ["dark grey"] * 3
    annotations = {"annotations": [
        {"question_id": 420, "image_id": 42, "question_type": "what color is the", "answer_type": "other",
         "multiple_choice_answer": "black",
         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]},
        {"question_id": 421, "image_id": 42, "question_type": "how many", "answer_type": "number",
         "multiple_choice_answer": "1",
         "answers": [{"answer": "1", "answer_confidence": "yes", "answer_id": i + 1} for i in range(10)]}]}
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(questions))
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(annotations))
    records = open_vqav2(tmp_path, "val")
    assert [(r.instruction, r.target) for r in records] == [("What colour is the cat?", "black"), ("How many cats?", "1")]
    assert records[0].references == tuple(answers) and records[0].kind == "vqa"
    with pytest.raises(DataSourceError, match=r"v2_mscoco_train2014_annotations.json|questions.json does not exist"):
        open_vqav2(tmp_path, "train")
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text("{not json")
    with pytest.raises(DataSourceError, match="is not valid JSON"):
        open_vqav2(tmp_path, "val")
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({"annotations": annotations["annotations"][:1]}))
    with pytest.raises(DataSourceError, match="question 421 .* has no annotation"):
        open_vqav2(tmp_path, "val")


def test_snli_ve(tmp_path):
    _jpg(tmp_path / "flickr30k_images" / "1000092795.jpg")
    rows = [{"Flickr30K_ID": "1000092795", "sentence1": "Two young guys are outside.", "sentence2": "Two men are outdoors.",
             "gold_label": "entailment", "pairID": "p0"},
            {"Flickr30K_ID": "1000092795", "sentence1": "Two young guys are outside.", "sentence2": "They sleep.",
             "gold_label": "contradiction", "pairID": "p1"},
            {"Flickr30K_ID": "1000092795", "sentence1": "Two young guys are outside.", "sentence2": "They are brothers.",
             "gold_label": "neutral", "pairID": "p2"}]
    (tmp_path / "snli_ve_dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = open_snli_ve(tmp_path, "dev")
    assert [r.target for r in records] == ["yes", "no", "maybe"]
    assert [r.references for r in records] == [("entailment",), ("contradiction",), ("neutral",)]
    assert records[0].instruction == 'can image and text1 " Two young guys are outside " imply text2 " Two men are outdoors "?'
    cut = open_snli_ve(tmp_path, "dev", max_words=2)  # OFA's pre_caption cut, each sentence to its first words
    assert cut[0].instruction == 'can image and text1 " Two young " imply text2 " Two men "?'
    rows[1]["gold_label"] = "-"
    (tmp_path / "snli_ve_dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataSourceError, match="line 2 of .* has gold_label '-'"):
        open_snli_ve(tmp_path, "dev")
    with pytest.raises(DataSourceError, match="snli_ve_test.jsonl does not exist"):
        open_snli_ve(tmp_path, "test")


REFS = [{"ref_id": 7, "ann_id": 55, "image_id": 9, "split": "val", "category_id": 1, "sent_ids": [0, 1],
         "file_name": "COCO_train2014_000000000009_55.jpg",
         "sentences": [{"sent": "man on the left", "raw": "Man on the left.", "sent_id": 0, "tokens": ["man"]},
                       {"sent": "left guy", "raw": "left guy", "sent_id": 1, "tokens": ["left", "guy"]}]},
        {"ref_id": 8, "ann_id": 56, "image_id": 9, "split": "testA", "category_id": 1, "sent_ids": [2],
         "file_name": "COCO_train2014_000000000009_56.jpg",
         "sentences": [{"sent": "right man", "raw": "right man", "sent_id": 2, "tokens": ["right", "man"]}]}]
INSTANCES = {"images": [{"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": 40, "height": 30}],
             "annotations": [{"id": 55, "image_id": 9, "bbox": [2.0, 3.0, 10.0, 20.0], "category_id": 1},
                             {"id": 56, "image_id": 9, "bbox": [20.0, 3.0, 10.0, 20.0], "category_id": 1}],
             "categories": [{"id": 1, "name": "person"}]}


def _refcoco(root, refs_bytes):
    _jpg(root / "train2014" / "COCO_train2014_000000000009.jpg")
    (root / "refcoco").mkdir(parents=True, exist_ok=True)
    (root / "refcoco" / "refs(unc).p").write_bytes(refs_bytes)
    (root / "refcoco" / "instances.json").write_text(json.dumps(INSTANCES))


def test_refcoco_from_the_pickle(tmp_path):
    _refcoco(tmp_path, pickle.dumps(REFS, protocol=2))
    records = open_refcoco(tmp_path, "refcoco", "unc", "val")
    assert [(r.instruction, r.box) for r in records] == [
        ('which region does the text " man on the left " describe?', (2.0, 3.0, 12.0, 23.0)),
        ('which region does the text " left guy " describe?', (2.0, 3.0, 12.0, 23.0))]
    # 40 x 30 image: x scaled by 40, y by 30, each to 0..999
    assert records[0].grounding_target() == "<bin_50> <bin_100> <bin_300> <bin_766>"
    assert [r.record_id for r in open_refcoco(tmp_path, "refcoco", "unc", "testA")] == ["8/2"]
    with pytest.raises(DataSourceError, match="unknown split 'test'"):
        open_refcoco(tmp_path, "refcoco", "unc", "test")
    with pytest.raises(DataSourceError, match="refcocog.*refs\\(umd\\).p does not exist"):
        open_refcoco(tmp_path, "refcocog", "umd", "test")


def test_refcoco_reads_a_python2_pickle_and_a_json_conversion(tmp_path):
    # Python 2 wrote str as 8-bit strings (SHORT_BINSTRING): the shape of the released refs files.
    def s(text):
        raw = text.encode()
        return b"U" + bytes([len(raw)]) + raw
    py2 = (b"\x80\x02]q\x00}q\x01(" + s("ref_id") + b"K\x07" + s("ann_id") + b"K7" + s("image_id") + b"K\t"
           + s("split") + s("val") + s("sentences") + b"]}(" + s("sent") + s("the man") + s("sent_id") + b"K\x00ua"
           + b"ua.")
    _refcoco(tmp_path, py2)
    (record,) = open_refcoco(tmp_path, "refcoco", "unc", "val")
    assert record.record_id == "7/0" and '" the man "' in record.instruction and record.box == (2.0, 3.0, 12.0, 23.0)
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(b"garbage")
    (tmp_path / "refcoco" / "refs(unc).json").write_text(json.dumps(REFS))
    assert len(open_refcoco(tmp_path, "refcoco", "unc", "val")) == 2  # the JSON conversion wins


class _Exploit:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_the_restricted_unpickler_refuses_anything_but_plain_data(tmp_path):
    sentinel = tmp_path / "pwned"
    bad = tmp_path / "refs(unc).p"
    bad.write_bytes(pickle.dumps([{"split": "val", "x": _Exploit(sentinel)}], protocol=2))
    with pytest.raises(DataSourceError, match=r"is not a plain-data pickle: global (posix|os)\.system is not allowed"):
        restricted_pickle_load(bad, "refcoco")
    assert not sentinel.exists()
    bad.write_bytes(pickle.dumps({"a": np.zeros(3)}))
    with pytest.raises(DataSourceError, match="numpy"):
        restricted_pickle_load(bad, "refcoco")
    bad.write_bytes(pickle.dumps([{"a": 1, "b": [1.5, "x", (2, b"y")]}]))
    assert restricted_pickle_load(bad, "refcoco") == [{"a": 1, "b": [1.5, "x", (2, b"y")]}]
    _refcoco(tmp_path / "data", pickle.dumps([dict(REFS[0], sentences=_Exploit(sentinel))]))
    with pytest.raises(DataSourceError, match="not a plain-data pickle"):
        open_refcoco(tmp_path / "data", "refcoco", "unc", "val")
    assert not sentinel.exists()


def test_missing_roots_and_malformed_files(tmp_path):
    for opener in (lambda r: open_coco_karpathy(r, "train"), lambda r: open_vqav2(r, "val"),
                   lambda r: open_snli_ve(r, "dev"), lambda r: open_refcoco(r)):
        with pytest.raises(DataSourceError, match="is not a folder"):
            opener(tmp_path / "absent")
    with pytest.raises(DataSourceError, match="dataset_coco.json does not exist; expected layout"):
        open_coco_karpathy(tmp_path, "train")
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [{"split": "train", "filepath": "x"}]}))
    with pytest.raises(DataSourceError, match="images\\[0\\] of .* lacks the field 'filename'"):
        open_coco_karpathy(tmp_path, "train")
    with pytest.raises(DataSourceError, match="unknown referring data set"):
        open_refcoco(tmp_path, "refclef", "unc")
