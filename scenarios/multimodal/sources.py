"""The real multimodal data sets from a local root, in their official file formats, as OFA-format records.

- COCO captions, Karpathy split: ROOT/dataset_coco.json and the images at ROOT/{filepath}/{filename}
  (train2014/, val2014/); one record per image with all its captions as references, or one per caption.
- VQAv2: ROOT/v2_OpenEnded_mscoco_{split}2014_questions.json, ROOT/v2_mscoco_{split}2014_annotations.json and
  ROOT/{split}2014/ images; one record per question, its 10 human answers as references.
- SNLI-VE: ROOT/snli_ve_{train,dev,test}.jsonl and ROOT/flickr30k_images/{Flickr30K_ID}.jpg; one record per pair.
- RefCOCO, RefCOCO+, RefCOCOg: ROOT/{refcoco,refcoco+,refcocog}/refs({unc,umd,google}).p and instances.json,
  images in ROOT/train2014/; one record per sentence.

RefCOCO's refs file is a Python 2 pickle. A data file must never run code, so it is read by an unpickler that
admits no global at all: plain data (dicts, lists, strings, numbers) needs none, and anything else in the file
is refused with an error naming it. A JSON conversion of the refs (the same list of dicts, `refs(unc).json`) is read
in preference when present.

Nothing reads pixels until `MultimodalRecord.load_image()`; opening checks that every image file exists, so a
missing folder fails at once with its path, not in the middle of a run.
"""
from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.eval.understanding_metrics import ENTAILMENT_LABELS, xywh_to_xyxy
from scenarios.multimodal.tasks import (CAPTION_INSTRUCTION, ENTAILMENT_INSTRUCTION, ENTAILMENT_TARGETS,
                                        GROUNDING_INSTRUCTION, location_tokens)
from scenarios.sources.base import DataSourceError, open_image, require_file

__all__ = ["KARPATHY_SPLITS", "REFER_SPLITS", "MultimodalRecord", "open_coco_karpathy", "open_refcoco",
           "open_snli_ve", "open_vqav2", "restricted_pickle_load"]

KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}  # restval trains, as usual
VQA_SPLITS = ("train", "val")  # the test splits publish no answers
SNLI_VE_SPLITS = ("train", "dev", "test")
# (data set, split_by) -> its splits, as the refer API releases them.
REFER_SPLITS = {("refcoco", "unc"): ("train", "val", "testA", "testB"),
                ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
                ("refcocog", "umd"): ("train", "val", "test"),
                ("refcocog", "google"): ("train", "val")}


@dataclass(frozen=True)
class MultimodalRecord:
    """One example of a real data set: the image file, the OFA instruction, the training target, what the metric
    compares against, and for grounding the target box (x1, y1, x2, y2) in the image's pixels (its location
    tokens depend on the image size: `grounding_target()`; `target` stays empty)."""

    kind: str
    record_id: str
    image: Path
    instruction: str
    target: str
    references: tuple[str, ...]
    box: tuple[float, float, float, float] | None = None

    def load_image(self):
        """The RGB PIL image."""
        return open_image(self.image)

    def grounding_target(self) -> str:
        """OFA's location tokens of `box` for this record's image (reads the image's size from its header)."""
        if self.box is None:
            raise ValueError(f"record {self.record_id} ({self.kind}) has no box")
        from PIL import Image

        with Image.open(self.image) as image:
            width, height = image.size
        return location_tokens(self.box, width, height)


def _read_json(path: Path, source: str, layout: str) -> Any:
    require_file(path, source, layout)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataSourceError(f"{source}: {path} is not valid JSON: {error}") from None


def _field(item: Any, key: str, where: str, source: str) -> Any:
    if not isinstance(item, dict) or key not in item:
        raise DataSourceError(f"{source}: {where} lacks the field {key!r}")
    return item[key]


def _check_images(records: list[MultimodalRecord], source: str, layout: str) -> list[MultimodalRecord]:
    for path in sorted({r.image for r in records}):
        if not path.is_file():
            raise DataSourceError(f"{source}: image {path} does not exist; expected layout:\n{layout}")
    return records


def _check_split(split: str, valid: tuple[str, ...] | dict, source: str) -> None:
    if split not in valid:
        raise DataSourceError(f"{source}: unknown split {split!r}; valid: {', '.join(valid)}")


def _root(root: Path | str, source: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataSourceError(f"{source}: data root {root} is not a folder")
    return root


# ------------------------------------------------------------------------------------------------ COCO captions
COCO_LAYOUT = "  ROOT/dataset_coco.json  (Karpathy's split file)\n  ROOT/train2014/*.jpg, ROOT/val2014/*.jpg"


def open_coco_karpathy(root: Path | str, split: str, per_caption: bool = False) -> list[MultimodalRecord]:
    """COCO captions in Karpathy's split: one record per image (target: its first caption), or with
    `per_caption` one per caption, as OFA trains."""
    source = "coco_karpathy"
    root = _root(root, source)
    _check_split(split, KARPATHY_SPLITS, source)
    data = _read_json(root / "dataset_coco.json", source, COCO_LAYOUT)
    images = _field(data, "images", str(root / "dataset_coco.json"), source)
    if not isinstance(images, list):
        raise DataSourceError(f"{source}: 'images' in {root / 'dataset_coco.json'} is not a list")
    records = []
    for n, image in enumerate(images):
        where = f"images[{n}] of {root / 'dataset_coco.json'}"
        if _field(image, "split", where, source) not in KARPATHY_SPLITS[split]:
            continue
        path = root / str(_field(image, "filepath", where, source)) / str(_field(image, "filename", where, source))
        sentences = _field(image, "sentences", where, source)
        captions = tuple(str(_field(s, "raw", f"a sentence of {where}", source)).strip() for s in sentences)
        if not captions:
            raise DataSourceError(f"{source}: {where} has no captions")
        image_id = str(image.get("cocoid", image.get("imgid", n)))
        targets = captions if per_caption else captions[:1]
        records += [MultimodalRecord("caption", f"{image_id}/{k}", path, CAPTION_INSTRUCTION, t, captions)
                    for k, t in enumerate(targets)]
    return _check_images(records, source, COCO_LAYOUT)


# ------------------------------------------------------------------------------------------------------- VQAv2
VQA_LAYOUT = ("  ROOT/v2_OpenEnded_mscoco_{split}2014_questions.json\n"
              "  ROOT/v2_mscoco_{split}2014_annotations.json\n"
              "  ROOT/{split}2014/COCO_{split}2014_<12-digit image id>.jpg")


def open_vqav2(root: Path | str, split: str) -> list[MultimodalRecord]:
    """VQAv2 questions with their 10 human answers; the target is the most common answer
    (`multiple_choice_answer`)."""
    source = "vqav2"
    root = _root(root, source)
    _check_split(split, VQA_SPLITS, source)
    qfile = root / f"v2_OpenEnded_mscoco_{split}2014_questions.json"
    afile = root / f"v2_mscoco_{split}2014_annotations.json"
    questions = _field(_read_json(qfile, source, VQA_LAYOUT), "questions", str(qfile), source)
    annotations = _field(_read_json(afile, source, VQA_LAYOUT), "annotations", str(afile), source)
    by_id = {}
    for n, ann in enumerate(annotations):
        by_id[_field(ann, "question_id", f"annotations[{n}] of {afile}", source)] = ann
    records = []
    for n, q in enumerate(questions):
        where = f"questions[{n}] of {qfile}"
        qid = _field(q, "question_id", where, source)
        if qid not in by_id:
            raise DataSourceError(f"{source}: question {qid} of {qfile} has no annotation in {afile}")
        ann = by_id[qid]
        answers = tuple(str(_field(a, "answer", f"an answer of question {qid} in {afile}", source))
                        for a in _field(ann, "answers", f"question {qid} in {afile}", source))
        if not answers:
            raise DataSourceError(f"{source}: question {qid} in {afile} has no answers")
        image_id = int(_field(q, "image_id", where, source))
        path = root / f"{split}2014" / f"COCO_{split}2014_{image_id:012d}.jpg"
        target = str(ann.get("multiple_choice_answer", answers[0]))
        records.append(MultimodalRecord("vqa", str(qid), path, str(_field(q, "question", where, source)).strip(),
                                        target, answers))
    return _check_images(records, source, VQA_LAYOUT)


# ----------------------------------------------------------------------------------------------------- SNLI-VE
SNLI_VE_LAYOUT = "  ROOT/snli_ve_{train,dev,test}.jsonl\n  ROOT/flickr30k_images/<Flickr30K_ID>.jpg"


def _first_words(text: str, max_words: int | None) -> str:
    return text if max_words is None else " ".join(text.split()[:max_words])


def open_snli_ve(root: Path | str, split: str, max_words: int | None = None) -> list[MultimodalRecord]:
    """SNLI-VE pairs: the premise is the Flickr30k caption (sentence1), the hypothesis sentence2, the target
    OFA's yes / no / maybe for entailment / contradiction / neutral. `max_words`: premise and hypothesis each cut to
    their first words, as OFA's `pre_caption(text, max_src_length)` cuts them (a decoder with a short context needs
    it: one over-long instruction would otherwise fail the whole run)."""
    source = "snli_ve"
    root = _root(root, source)
    _check_split(split, SNLI_VE_SPLITS, source)
    path = require_file(root / f"snli_ve_{split}.jsonl", source, SNLI_VE_LAYOUT)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number} of {path}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataSourceError(f"{source}: {where} is not valid JSON: {error}") from None
        label = _field(row, "gold_label", where, source)
        if label not in ENTAILMENT_LABELS:
            raise DataSourceError(f"{source}: {where} has gold_label {label!r}; valid: {', '.join(ENTAILMENT_LABELS)}")
        premise = _first_words(str(_field(row, "sentence1", where, source)).strip().rstrip("."), max_words)
        hypothesis = _first_words(str(_field(row, "sentence2", where, source)).strip().rstrip("."), max_words)
        image = root / "flickr30k_images" / f"{_field(row, 'Flickr30K_ID', where, source)}.jpg"
        records.append(MultimodalRecord(
            "entailment", str(row.get("pairID", number)), image,
            ENTAILMENT_INSTRUCTION.format(premise=premise, hypothesis=hypothesis), ENTAILMENT_TARGETS[label],
            (label,)))
    if not records:
        raise DataSourceError(f"{source}: {path} holds no pairs")
    return _check_images(records, source, SNLI_VE_LAYOUT)


# ------------------------------------------------------------------------------------------------ RefCOCO/+/g
REFER_LAYOUT = ("  ROOT/{refcoco,refcoco+,refcocog}/refs({unc,umd,google}).p  (or the same list as refs(...).json)\n"
                "  ROOT/{refcoco,refcoco+,refcocog}/instances.json\n"
                "  ROOT/train2014/COCO_train2014_<12-digit image id>.jpg")


class _PlainDataUnpickler(pickle.Unpickler):
    """Admits no global: dicts, lists, tuples, strings, bytes and numbers load; any class, function or module
    reference (the only way a pickle can run code) is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (plain data only)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed (plain data only)")


def restricted_pickle_load(path: Path, source: str) -> Any:
    """The plain data in the pickle at `path`; DataSourceError naming the file if it holds anything else.
    Python 2 byte strings are decoded as UTF-8, as the refer API's files were written."""
    try:
        with open(path, "rb") as handle:
            return _PlainDataUnpickler(io.BytesIO(handle.read()), encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, UnicodeDecodeError, AttributeError,
            IndexError) as error:
        raise DataSourceError(f"{source}: {path} is not a plain-data pickle: {error}") from None


def _refs(folder: Path, split_by: str, source: str) -> list:
    json_path, pickle_path = folder / f"refs({split_by}).json", folder / f"refs({split_by}).p"
    refs = (_read_json(json_path, source, REFER_LAYOUT) if json_path.is_file()
            else restricted_pickle_load(require_file(pickle_path, source, REFER_LAYOUT), source))
    if not isinstance(refs, list):
        raise DataSourceError(f"{source}: the refs file in {folder} does not hold a list of refs")
    return refs


def open_refcoco(root: Path | str, dataset: str = "refcoco", split_by: str = "unc", split: str = "val"
                 ) -> list[MultimodalRecord]:
    """Referring expressions of RefCOCO / RefCOCO+ / RefCOCOg: one record per sentence, the target box its
    object's COCO box as (x1, y1, x2, y2)."""
    source = f"{dataset}({split_by})"
    root = _root(root, source)
    if (dataset, split_by) not in REFER_SPLITS:
        raise DataSourceError(f"unknown referring data set {dataset!r} split by {split_by!r}; valid: "
                              + ", ".join(f"{d}({s})" for d, s in REFER_SPLITS))
    _check_split(split, REFER_SPLITS[dataset, split_by], source)
    folder = root / dataset
    refs = _refs(folder, split_by, source)
    instances = _read_json(folder / "instances.json", source, REFER_LAYOUT)
    boxes = {_field(a, "id", "an annotation of instances.json", source):
             _field(a, "bbox", "an annotation of instances.json", source)
             for a in _field(instances, "annotations", str(folder / "instances.json"), source)}
    files = {_field(i, "id", "an image of instances.json", source):
             _field(i, "file_name", "an image of instances.json", source)
             for i in _field(instances, "images", str(folder / "instances.json"), source)}
    records = []
    for n, ref in enumerate(refs):
        where = f"ref {n} of the refs file in {folder}"
        if _field(ref, "split", where, source) != split:
            continue
        ann_id, image_id = _field(ref, "ann_id", where, source), _field(ref, "image_id", where, source)
        if ann_id not in boxes or image_id not in files:
            raise DataSourceError(f"{source}: {where} names annotation {ann_id} / image {image_id}, "
                                  f"missing from {folder / 'instances.json'}")
        box = xywh_to_xyxy(boxes[ann_id])
        for sentence in _field(ref, "sentences", where, source):
            text = str(_field(sentence, "sent", f"a sentence of {where}", source)).strip()
            sent_id = sentence.get("sent_id", len(records))
            records.append(MultimodalRecord("grounding", f"{ref.get('ref_id', n)}/{sent_id}",
                                            root / "train2014" / str(files[image_id]),
                                            GROUNDING_INSTRUCTION.format(expression=text), "", (), box))
    return _check_images(records, source, REFER_LAYOUT)
