"""CUB-200-2011 (https://www.vision.caltech.edu/datasets/cub_200_2011/) from its own text files: `images.txt`
(id path), `image_class_labels.txt` (id class, 1-based), `train_test_split.txt` (id is_train; 5,994 / 5,794) and
`classes.txt` (id "001.Black_footed_Albatross"); images under `images/`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scenarios.sources.base import (DataSourceError, FileRecords, Source, check_files_exist, read_table,
                                    require_dir, require_file)

LAYOUT = ("  ROOT/CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt}\n"
          "  ROOT/CUB_200_2011/images/<class folder>/*.jpg")


def _class_name(folder_name: str) -> str:
    # "001.Black_footed_Albatross" -> "Black footed Albatross", the name CLIP-style methods prompt with
    return folder_name.split(".", 1)[-1].replace("_", " ")


def open_cub200(root: Path) -> Source:
    root = Path(root)
    tree = root / "CUB_200_2011" if (root / "CUB_200_2011").is_dir() else root
    require_dir(tree, "cub200", LAYOUT)
    files = {name: require_file(tree / name, "cub200", LAYOUT)
             for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")}
    classes = read_table(files["classes.txt"], 2, "cub200")
    class_ids = [int(c[0]) for c in classes]
    if class_ids != list(range(1, len(classes) + 1)):
        raise DataSourceError(f"cub200: {files['classes.txt']} must number classes 1..N in order")
    images = {int(i): p for i, p in read_table(files["images.txt"], 2, "cub200")}
    labels = {int(i): int(c) - 1 for i, c in read_table(files["image_class_labels.txt"], 2, "cub200")}
    is_train = {int(i): t == "1" for i, t in read_table(files["train_test_split.txt"], 2, "cub200")}
    for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train)):
        missing = sorted(set(images) - set(table))
        if missing:
            raise DataSourceError(f"cub200: {files[name]} has no row for image id {missing[0]} "
                                  f"({images[missing[0]]})")
    bad = [i for i, c in labels.items() if not 0 <= c < len(classes)]
    if bad:
        raise DataSourceError(f"cub200: {files['image_class_labels.txt']}: image {bad[0]} has class "
                              f"{labels[bad[0]] + 1}, outside 1..{len(classes)}")
    splits = {}
    for split, flag in (("train", True), ("test", False)):
        ids = sorted(i for i in images if is_train[i] == flag)
        records = FileRecords(tree / "images", [images[i] for i in ids], np.array([labels[i] for i in ids]))
        splits[split] = check_files_exist(records, "cub200", str(files["images.txt"]))
    return Source("cub200", [_class_name(c[1]) for c in classes], splits, root=tree,
                  notes="official train_test_split.txt")
