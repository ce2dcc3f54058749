"""The 11 data sets of CoOp / CoCoOp (Zhou et al. 2022), in the folders of CoOp's DATASETS.md.

Ten are read through CoOp's published `split_zhou_<Name>.json` (`train` / `val` / `test` lists of
`[path relative to the image folder, label, classname]`); FGVC-Aircraft through its official
`images_variant_{train,val,test}.txt` and `variants.txt` (CoOp uses those too); ImageNet through
`imagenet/images/{train,val}/<wnid>/` and CoOp's `imagenet/classnames.txt` (`<wnid> <name>` per line), with val
as the test split, as CoOp does.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scenarios.sources.base import (DataSourceError, FileRecords, Source, check_files_exist, class_folders,
                                    image_files, require_dir, require_file)

# name -> (dataset folder, image folder inside it, split file inside it)
SPLIT_JSON = {
    "caltech101": ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json"),
    "oxford_pets": ("oxford_pets", "images", "split_zhou_OxfordPets.json"),
    "stanford_cars": ("stanford_cars", "", "split_zhou_StanfordCars.json"),
    "oxford_flowers": ("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json"),
    "food101": ("food-101", "images", "split_zhou_Food101.json"),
    "sun397": ("sun397", "SUN397", "split_zhou_SUN397.json"),
    "dtd": ("dtd", "images", "split_zhou_DescribableTextures.json"),
    "eurosat": ("eurosat", "2750", "split_zhou_EuroSAT.json"),
    "ucf101": ("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json"),
}
COOP_DATASETS = (*SPLIT_JSON, "fgvc_aircraft", "imagenet")


def layout(name: str) -> str:
    if name in SPLIT_JSON:
        folder, images, split = SPLIT_JSON[name]
        return f"  ROOT/{folder}/{split}\n  ROOT/{folder}/{images + '/' if images else ''}<paths listed in it>"
    if name == "fgvc_aircraft":
        return ("  ROOT/fgvc_aircraft/{images_variant_train.txt, images_variant_val.txt, images_variant_test.txt,"
                " variants.txt}\n  ROOT/fgvc_aircraft/images/<id>.jpg")
    return ("  ROOT/imagenet/classnames.txt   ('<wnid> <class name>' per line)\n"
            "  ROOT/imagenet/images/{train,val}/<wnid>/*")


def _from_json(root: Path, name: str) -> Source:
    folder, images, split_name = SPLIT_JSON[name]
    tree = require_dir(root / folder, f"coop_{name}", layout(name))
    split_file = require_file(tree / split_name, f"coop_{name}", layout(name))
    try:
        raw = json.loads(split_file.read_text())
    except json.JSONDecodeError as error:
        raise DataSourceError(f"coop_{name}: {split_file} is not valid JSON: {error}") from None
    names: dict[int, str] = {}
    splits = {}
    for split in ("train", "val", "test"):
        rows = raw.get(split) if isinstance(raw, dict) else None
        if not isinstance(rows, list) or not rows:
            raise DataSourceError(f"coop_{name}: {split_file} has no {split!r} list of [path, label, classname]")
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], int)):
                raise DataSourceError(f"coop_{name}: {split_file} {split}: entry {row!r} is not [path, label, "
                                      f"classname]")
            if names.setdefault(row[1], row[2]) != row[2]:
                raise DataSourceError(f"coop_{name}: {split_file}: label {row[1]} is {row[2]!r} and "
                                      f"{names[row[1]]!r}")
        records = FileRecords(tree / images if images else tree, [r[0] for r in rows],
                              np.array([r[1] for r in rows]))
        splits[split] = check_files_exist(records, f"coop_{name}", f"{split_file} ({split})")
    if sorted(names) != list(range(len(names))):
        raise DataSourceError(f"coop_{name}: {split_file} labels are not 0..N-1")
    return Source(f"coop_{name}", [names[i] for i in range(len(names))], splits, root=tree,
                  notes=f"CoOp split {split_name}")


def _aircraft(root: Path) -> Source:
    tree = require_dir(root / "fgvc_aircraft", "coop_fgvc_aircraft", layout("fgvc_aircraft"))
    variants_file = require_file(tree / "variants.txt", "coop_fgvc_aircraft", layout("fgvc_aircraft"))
    variants = [line.strip() for line in variants_file.read_text().splitlines() if line.strip()]
    index = {v: i for i, v in enumerate(variants)}
    splits = {}
    for split in ("train", "val", "test"):
        listing = require_file(tree / f"images_variant_{split}.txt", "coop_fgvc_aircraft", layout("fgvc_aircraft"))
        paths, labels = [], []
        for number, line in enumerate(listing.read_text().splitlines(), 1):
            if not line.strip():
                continue
            image_id, _, variant = line.strip().partition(" ")
            if variant not in index:
                raise DataSourceError(f"coop_fgvc_aircraft: {listing} line {number}: variant {variant!r} is not "
                                      f"in {variants_file}")
            paths.append(f"{image_id}.jpg")
            labels.append(index[variant])
        records = FileRecords(tree / "images", paths, np.array(labels))
        splits[split] = check_files_exist(records, "coop_fgvc_aircraft", str(listing))
    return Source("coop_fgvc_aircraft", variants, splits, root=tree, notes="official images_variant_*.txt")


def _imagenet(root: Path) -> Source:
    tree = require_dir(root / "imagenet", "coop_imagenet", layout("imagenet"))
    names_file = require_file(tree / "classnames.txt", "coop_imagenet", layout("imagenet"))
    rows = [line.strip().split(" ", 1) for line in names_file.read_text().splitlines() if line.strip()]
    wnids, names = [r[0] for r in rows], [r[1] if len(r) > 1 else r[0] for r in rows]
    splits = {}
    for split, folder in (("train", "train"), ("test", "val")):
        base = require_dir(tree / "images" / folder, "coop_imagenet", layout("imagenet"))
        found = [f.name for f in class_folders(base, "coop_imagenet", layout("imagenet"))]
        if found != sorted(wnids):
            extra = sorted(set(found) ^ set(wnids))[:3]
            raise DataSourceError(f"coop_imagenet: {base} class folders differ from {names_file} (e.g. {extra})")
        paths, labels = [], []
        for label, wnid in enumerate(wnids):
            for file in image_files(base / wnid):
                paths.append(str(file.relative_to(tree / "images")))
                labels.append(label)
        splits[split] = FileRecords(tree / "images", paths, np.array(labels))
    return Source("coop_imagenet", names, splits, root=tree, notes="CoOp classnames.txt; val used as test")


def open_coop(root: Path, dataset: str) -> Source:
    """One CoOp data set under `root` (the folder holding CoOp's per-dataset folders)."""
    root = Path(root)
    if dataset in SPLIT_JSON:
        return _from_json(root, dataset)
    if dataset == "fgvc_aircraft":
        return _aircraft(root)
    if dataset == "imagenet":
        return _imagenet(root)
    raise DataSourceError(f"unknown CoOp data set {dataset!r}; valid: {', '.join(COOP_DATASETS)}")


