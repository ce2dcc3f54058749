"""OFA's task data sets as a task-incremental stream: captioning (COCO captions, Karpathy split) -> VQA (VQAv2) ->
visual entailment (SNLI-VE), read from one local data root by the loaders of scenarios/multimodal/sources.py.

Layout: one sub-folder per data set under the data root (`--data-root DIR` or PROMPTSHIFT_DATA), each in the
layout its loader documents (the COCO image folders may be links to one copy):

  ROOT/coco_karpathy/dataset_coco.json, ROOT/coco_karpathy/{train2014,val2014}/*.jpg
  ROOT/vqav2/v2_OpenEnded_mscoco_{train,val}2014_questions.json, ROOT/vqav2/v2_mscoco_{train,val}2014_annotations.json,
      ROOT/vqav2/{train2014,val2014}/COCO_{split}2014_<12-digit id>.jpg
  ROOT/snli_ve/snli_ve_{train,dev,test}.jsonl, ROOT/snli_ve/flickr30k_images/<Flickr30K_ID>.jpg

Splits are the official ones: COCO Karpathy train (with restval) / val / test, SNLI-VE train / dev / test. VQAv2
publishes no answers for its test splits, so here test is the official val split, and val is a seeded carve of
whole images out of the official train split (the rest of train trains).

Sizes: `n_train`, `n_val`, `n_test` examples per task, drawn without replacement by a generator seeded with (seed,
task, split): the stream is a pure function of the seed, the arguments and the files. Test splits are drawn first,
then val, then train, each among the images no earlier draw of any task took (an image is known by its file name:
COCO's are the same files for captioning and VQA), so no image is in two splits of the stream. A task whose split
has fewer examples than asked is an error, not a smaller split. Captioning trains on one example per caption (as
OFA trains) and is tested on one example per image, scored against all its captions. Entailment's premise and
hypothesis keep their first `ENTAILMENT_MAX_WORDS` words each, as OFA cuts them to fit its text length.

Images are decoded once each and resized to an `image_size` square (bicubic, no crop: OFA resizes to its square
patch-image size), uint8 `(S, S, 3)`: S is the backbone's input size, so the loop's `pixels_of` needs no resize.

Referring expressions are not part of this stream: their targets are OFA's location tokens, which the real
encoder-decoder here cannot write (bench/multimodal/open_clip_coca.py); asking for them is refused.

`identity_files` names what a cell's data identity hashes (scenarios/identity.py): the annotation files and the
image folders of the tasks asked for.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scenarios.multimodal.scenario import MultimodalScenario
from scenarios.multimodal.sources import MultimodalRecord, open_coco_karpathy, open_snli_ve, open_vqav2
from scenarios.multimodal.streams import Experience
from scenarios.multimodal.tasks import TASK_KINDS, Example
from scenarios.sources import MULTIMODAL_FOLDERS, MULTIMODAL_SOURCE, require_root
from scenarios.sources.base import DataSourceError, open_image

__all__ = ["LAYOUT", "MULTIMODAL_SOURCE_BUILDERS", "STREAM_KINDS", "identity_files", "official_records",
           "real_task_incremental", "structure_line"]

STREAM_KINDS: tuple[str, ...] = ("caption", "vqa", "entailment")
FOLDERS = dict(zip(STREAM_KINDS, MULTIMODAL_FOLDERS))
DOMAINS = {"caption": "coco", "vqa": "vqav2", "entailment": "snli_ve"}  # the experiences' names: "<kind>/<domain>"
ANNOTATIONS = {"caption": ("dataset_coco.json",),
               "vqa": tuple(f"{stem.format(split)}.json" for split in ("train", "val")
                            for stem in ("v2_OpenEnded_mscoco_{}2014_questions", "v2_mscoco_{}2014_annotations")),
               "entailment": tuple(f"snli_ve_{split}.jsonl" for split in ("train", "dev", "test"))}
IMAGE_FOLDERS = {"caption": ("train2014", "val2014"), "vqa": ("train2014", "val2014"),
                 "entailment": ("flickr30k_images",)}
SPLITS = ("train", "val", "test")
# OFA cuts the premise and the hypothesis to their first max_src_length words; CoCa's text context is 76 BPE pieces,
# and the entailment instruction's template takes about 20 of them, so each sentence keeps its first 20 words (SNLI's
# sentences are far shorter on average: the cut touches the rare long premise).
ENTAILMENT_MAX_WORDS = 20
LAYOUT = "\n".join(f"  ROOT/{FOLDERS[k]}/{{{', '.join(ANNOTATIONS[k])}}} and "
                   f"{', '.join(f'{FOLDERS[k]}/{f}/' for f in IMAGE_FOLDERS[k])}" for k in STREAM_KINDS)
GROUNDING_REFUSED = ("referring expressions (grounding) are not part of the real-data stream: their targets are "
                     "OFA's location tokens <bin_i>, which the real encoder-decoder's BPE vocabulary (open_clip's "
                     "CoCa) does not have (bench/multimodal/open_clip_coca.py)")


def _root(root: str | Path | None) -> Path:
    return require_root(MULTIMODAL_SOURCE, root, LAYOUT)


def _folder(root: Path, kind: str) -> Path:
    folder = root / FOLDERS[kind]
    if not folder.is_dir():
        raise DataSourceError(f"source {MULTIMODAL_SOURCE!r}: the {kind} data set's folder {folder} does not exist; "
                              f"expected layout under the data root:\n{LAYOUT}")
    return folder


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(kinds)
    if "grounding" in kinds:
        raise ValueError(GROUNDING_REFUSED)
    unknown = [k for k in kinds if k not in STREAM_KINDS]
    if unknown:
        raise ValueError(f"unknown task kind(s) {unknown} for the real-data stream; valid: {', '.join(STREAM_KINDS)}")
    if len(kinds) < 2 or len(set(kinds)) != len(kinds):
        raise ValueError(f"a task-incremental stream needs >= 2 distinct task kinds, got {list(kinds)}")
    return kinds


def identity_files(root: str | Path | None, kinds: Sequence[str] = STREAM_KINDS) -> tuple[list[Path], list[Path]]:
    """(annotation files, image folders) of the tasks `kinds` under the data root, sorted; DataSourceError naming
    the first missing root, folder or file."""
    where = _root(root)
    files, folders = [], []
    for kind in sorted(_check_kinds(kinds)):
        folder = _folder(where, kind)
        for name in ANNOTATIONS[kind]:
            if not (folder / name).is_file():
                raise DataSourceError(f"source {MULTIMODAL_SOURCE!r}: file {folder / name} does not exist; "
                                      f"expected layout under the data root:\n{LAYOUT}")
            files.append(folder / name)
        for name in IMAGE_FOLDERS[kind]:
            if not (folder / name).is_dir():
                raise DataSourceError(f"source {MULTIMODAL_SOURCE!r}: image folder {folder / name} does not exist; "
                                      f"expected layout under the data root:\n{LAYOUT}")
            folders.append(folder / name)
    return files, folders


def official_records(root: Path, kind: str) -> dict[str, list[MultimodalRecord]]:
    """The official splits of one task as "train" / "val" / "test" records (VQAv2: "train" and "test" only,
    its val is carved out of train by the stream)."""
    folder = _folder(root, kind)
    if kind == "caption":
        return {"train": open_coco_karpathy(folder, "train", per_caption=True),
                "val": open_coco_karpathy(folder, "val"), "test": open_coco_karpathy(folder, "test")}
    if kind == "vqa":
        return {"train": open_vqav2(folder, "train"), "test": open_vqav2(folder, "val")}
    return {split: open_snli_ve(folder, official, max_words=ENTAILMENT_MAX_WORDS)
            for split, official in (("train", "train"), ("val", "dev"), ("test", "test"))}


def _image_key(record: MultimodalRecord) -> str:
    return record.image.name  # COCO's file names are the same whichever data set's folder holds them


def _rng(seed: int, kind: str, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, TASK_KINDS.index(kind), SPLITS.index(split), 2408])


def _draw(records: Sequence[MultimodalRecord], n: int, rng: np.random.Generator, taken: set[str], what: str
          ) -> list[MultimodalRecord]:
    """`n` records (in file order) among those whose image no earlier split took."""
    pool = [r for r in records if _image_key(r) not in taken]
    if n < 1 or len(pool) < n:
        raise ValueError(f"{what}: {n} examples asked, {len(pool)} available (images of earlier splits excluded)")
    return [pool[i] for i in np.sort(rng.choice(len(pool), size=n, replace=False))]


def _carve(records: Sequence[MultimodalRecord], n: int, rng: np.random.Generator, taken: set[str]
           ) -> tuple[list[MultimodalRecord], list[MultimodalRecord]]:
    """VQAv2's val split: whole images of the official train split, in seeded order until they hold `n`
    questions, `n` of their questions drawn; and the records of every other train image (what trains)."""
    per_image = Counter(_image_key(r) for r in records if _image_key(r) not in taken)
    images = sorted(per_image)
    chosen, count = set(), 0
    for i in rng.permutation(len(images)):
        if count >= n:
            break
        chosen.add(images[i])
        count += per_image[images[i]]
    val = _draw([r for r in records if _image_key(r) in chosen], n, rng, taken, "vqa val (carved from train)")
    return val, [r for r in records if _image_key(r) not in chosen]


def _examples(records: Sequence[MultimodalRecord], size: int, pixels: dict[Path, np.ndarray]) -> tuple[Example, ...]:
    """The records as examples, each image decoded and resized once (`pixels` is shared by the whole stream)."""
    from PIL import Image

    out = []
    for r in records:
        if r.image not in pixels:
            try:
                image = open_image(r.image).resize((size, size), Image.BICUBIC)
            except OSError as error:  # PIL's error for a truncated or foreign file
                raise DataSourceError(f"{MULTIMODAL_SOURCE}: image {r.image} does not decode: {error}") from None
            pixels[r.image] = np.asarray(image, dtype=np.uint8)
        out.append(Example(r.kind, _image_key(r), pixels[r.image], r.instruction, r.target, r.references))
    return tuple(out)


def real_task_incremental(name: str, seed: int, dataset: str = MULTIMODAL_SOURCE,
                          kinds: Sequence[str] = STREAM_KINDS, n_train: int = 4000, n_val: int = 250,
                          n_test: int = 1000, image_size: int = 224, data_root: str | None = None
                          ) -> MultimodalScenario:
    """One experience per task kind, in order, from the data root (see the module docstring): every data set is
    opened (its files and images checked) before anything is drawn or decoded."""
    if dataset != MULTIMODAL_SOURCE:
        raise ValueError(f"the real multimodal stream reads {MULTIMODAL_SOURCE!r}, not {dataset!r}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    kinds = _check_kinds(kinds)
    root = _root(data_root)
    identity_files(root, kinds)  # every folder and annotation file present, before seconds of JSON parsing
    official = {kind: official_records(root, kind) for kind in kinds}
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    drawn: dict[tuple[str, str], list[MultimodalRecord]] = {}
    taken: set[str] = set()
    for split in ("test", "val", "train"):  # held-out data first: what trains never shares an image with it
        for kind in kinds:
            rng = _rng(seed, kind, split)
            if kind == "vqa" and split == "val":
                drawn[kind, "val"], official[kind]["train"] = _carve(official[kind]["train"], n_val, rng, taken)
            else:
                drawn[kind, split] = _draw(official[kind][split], sizes[split], rng, taken, f"{kind} {split}")
            taken |= {_image_key(r) for r in drawn[kind, split]}
    pixels: dict[Path, np.ndarray] = {}
    stream = [Experience(f"{kind}/{DOMAINS[kind]}", kind, DOMAINS[kind],
                         *(_examples(drawn[kind, split], image_size, pixels) for split in SPLITS))
              for kind in kinds]
    return MultimodalScenario(name, "multimodal_task_incremental", seed, stream)


def structure_line(root: str | Path | None = None) -> tuple[bool, str]:
    """(every data set opens, one line): each task's official split sizes, for `plan` (opens every file)."""
    try:
        where = _root(root)
        parts = []
        for kind in STREAM_KINDS:
            records = official_records(where, kind)
            parts.append(f"{FOLDERS[kind]}: " + ", ".join(f"{split} {len(r)}" for split, r in records.items()))
    except DataSourceError as error:
        return False, str(error).splitlines()[0]
    return True, "; ".join(parts)


# The on-disk builders of the multimodal kinds (scenarios/catalog.py picks one for a preset with a `dataset`).
MULTIMODAL_SOURCE_BUILDERS = {"multimodal_task_incremental": real_task_incremental}
