"""Miniature copies of the real data sets' on-disk formats, for tests, the loader benchmark and the device check.

Each writer produces the official layout (file names, list formats, binary records) with a few tiny images per
class. Pixels are a per-class colour plus seeded noise, so a model can learn them and a test can tell classes
apart; nothing here is real data.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np

OFFICE_HOME_FOLDERS = ("Art", "Clipart", "Product", "Real World")
DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")


def class_image(label: int, index: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """A `(size, size, 3)` uint8 image: the class's colour, a little seeded noise."""
    colour = np.array([(label * 37) % 256, (label * 91 + 60) % 256, (label * 53 + 120) % 256], dtype=np.int16)
    noise = np.random.default_rng([seed, label, index]).integers(-12, 13, size=(size, size, 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def write_jpeg(path: Path, pixels: np.ndarray, quality: int = 90) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path, "JPEG", quality=quality)
    return path


def cifar100_names() -> list[str]:
    return [f"class_{i:02d}" for i in range(100)]


def write_cifar100_binary(root: Path, train_per_class: int = 2, test_per_class: int = 1) -> Path:
    """ROOT/cifar-100-binary/{train.bin, test.bin, fine_label_names.txt}, all 100 classes, 32x32 records."""
    folder = Path(root) / "cifar-100-binary"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fine_label_names.txt").write_text("\n".join(cifar100_names()) + "\n")
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        records = []
        for i in range(per):
            for label in range(100):  # interleaved, as the real file is not sorted by class
                pixels = class_image(label, i, 32, seed=1 if split == "train" else 2)
                records.append(np.concatenate([[label // 5, label], pixels.transpose(2, 0, 1).ravel()]))
        np.asarray(records, dtype=np.uint8).tofile(folder / f"{split}.bin")
    return folder


def write_cifar100_python(root: Path, train_per_class: int = 1, test_per_class: int = 1) -> Path:
    """ROOT/cifar-100-python/{train, test, meta}: the python version (pickled dicts of bytes keys and arrays)."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [n.encode() for n in cifar100_names()],
                     b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}, handle, protocol=2)
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        labels = [label for _ in range(per) for label in range(100)]
        data = np.stack([class_image(label, i, 32).transpose(2, 0, 1).ravel()
                         for i in range(per) for label in range(100)]).astype(np.uint8)
        with open(folder / split, "wb") as handle:
            pickle.dump({b"data": data, b"fine_labels": labels, b"coarse_labels": [x // 5 for x in labels],
                         b"filenames": [f"{k}.png".encode() for k in range(len(labels))]}, handle, protocol=2)
    return folder


def write_imagenet_r(root: Path, per_class: int = 5, size: int = 12) -> Path:
    """ROOT/imagenet-r/<wnid>/*.jpg for the 200 ImageNet-R wnids."""
    from scenarios.sources.imagenet_r import imagenet_r_wnids

    tree = Path(root) / "imagenet-r"
    for label, wnid in enumerate(imagenet_r_wnids()):
        for i in range(per_class):
            write_jpeg(tree / wnid / f"art_{i}.jpg", class_image(label, i, size))
    return tree


def write_cub200(root: Path, num_classes: int = 6, per_class: int = 4, size: int = 12) -> Path:
    """ROOT/CUB_200_2011 with images.txt, image_class_labels.txt, train_test_split.txt, classes.txt; image ids
    1..N, every other image of a class in train."""
    tree = Path(root) / "CUB_200_2011"
    classes, images, labels, split = [], [], [], []
    image_id = 0
    for c in range(num_classes):
        folder = f"{c + 1:03d}.Bird_Number_{c + 1}"
        classes.append(f"{c + 1} {folder}")
        for i in range(per_class):
            image_id += 1
            rel = f"{folder}/Bird_Number_{c + 1}_{i:04d}.jpg"
            write_jpeg(tree / "images" / rel, class_image(c, i, size))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c + 1}")
            split.append(f"{image_id} {1 if i % 2 == 0 else 0}")
    for name, rows in (("classes.txt", classes), ("images.txt", images), ("image_class_labels.txt", labels),
                       ("train_test_split.txt", split)):
        (tree / name).write_text("\n".join(rows) + "\n")
    return tree


def write_domainnet(root: Path, num_classes: int = 4, per_class: int = 3,
                    domains: Sequence[str] = DOMAINNET_DOMAINS, size: int = 12) -> Path:
    """ROOT/domainnet/<domain>/<class>/*.jpg and <domain>_{train,test}.txt (last image of a class is test)."""
    tree = Path(root) / "domainnet"
    names = [f"thing_{c}" for c in range(num_classes)]
    for d, domain in enumerate(domains):
        lists = {"train": [], "test": []}
        for c, name in enumerate(names):
            for i in range(per_class):
                rel = f"{domain}/{name}/{domain}_{c:03d}_{i:06d}.jpg"
                write_jpeg(tree / rel, class_image(c, i + 10 * d, size))
                lists["test" if i == per_class - 1 else "train"].append(f"{rel} {c}")
        for split, rows in lists.items():
            (tree / f"{domain}_{split}.txt").write_text("\n".join(rows) + "\n")
    return tree


def write_office_home(root: Path, num_classes: int = 3, per_class: int = 2,
                      folders: Sequence[str] = OFFICE_HOME_FOLDERS, size: int = 12) -> Path:
    """ROOT/office_home/{Art, Clipart, Product, Real World}/<class>/*.jpg."""
    tree = Path(root) / "office_home"
    for d, domain in enumerate(folders):
        for c in range(num_classes):
            for i in range(per_class):
                write_jpeg(tree / domain / f"Object_{c}" / f"{i:05d}.jpg", class_image(c, i + 10 * d, size))
    return tree


def write_coop_pets(root: Path, num_classes: int = 5, train_per_class: int = 6, val_per_class: int = 2,
                    test_per_class: int = 2, size: int = 12) -> Path:
    """ROOT/oxford_pets/images/*.jpg and split_zhou_OxfordPets.json (train / val / test of [path, label, name])."""
    tree = Path(root) / "oxford_pets"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for split_name, per in (("train", train_per_class), ("val", val_per_class), ("test", test_per_class)):
        for i in range(per):
            for c in range(num_classes):  # interleaved, as CoOp's lists are
                rel = f"pet_{c}_{split_name}_{i}.jpg"
                write_jpeg(tree / "images" / rel, class_image(c, i, size))
                split[split_name].append([rel, c, f"pet {c}"])
    (tree / "split_zhou_OxfordPets.json").write_text(json.dumps(split))
    return tree


def write_image_folder(root: Path, classes: Sequence[str] = ("cat", "dog", "owl"), per_class: int = 5,
                       domains: Sequence[str] | None = None, size: int = 12) -> Path:
    """ROOT/<class>/*.jpg, or ROOT/<domain>/<class>/*.jpg."""
    root = Path(root)
    for d, domain in enumerate(domains or [None]):
        base = root / domain if domain else root
        for c, name in enumerate(classes):
            for i in range(per_class):
                write_jpeg(base / name / f"{i}.jpg", class_image(c, i + 10 * d, size))
    return root


def write_fgvc_aircraft(root: Path, variants: Sequence[str] = ("707-320", "A300B4", "Cessna 172"),
                        per_split: int = 2, size: int = 12) -> Path:
    """ROOT/fgvc_aircraft/{variants.txt, images_variant_{train,val,test}.txt, images/<id>.jpg} (CoOp's copy)."""
    tree = Path(root) / "fgvc_aircraft"
    (tree / "images").mkdir(parents=True, exist_ok=True)
    (tree / "variants.txt").write_text("\n".join(variants) + "\n")
    image_id = 1000000
    for split in ("train", "val", "test"):
        rows = []
        for i in range(per_split):
            for c, variant in enumerate(variants):
                image_id += 1
                write_jpeg(tree / "images" / f"{image_id}.jpg", class_image(c, i, size))
                rows.append(f"{image_id} {variant}")
        (tree / f"images_variant_{split}.txt").write_text("\n".join(rows) + "\n")
    return tree


def write_coop_imagenet(root: Path, wnids: Sequence[str] = ("n01440764", "n01443537", "n01484850"),
                        names: Sequence[str] = ("tench", "goldfish", "great white shark"), per_class: int = 2,
                        size: int = 12) -> Path:
    """ROOT/imagenet/{classnames.txt, images/train/<wnid>/*.JPEG, images/val/<wnid>/*.JPEG} (CoOp's layout)."""
    tree = Path(root) / "imagenet"
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "classnames.txt").write_text("\n".join(f"{w} {n}" for w, n in zip(wnids, names)) + "\n")
    for split in ("train", "val"):
        for c, wnid in enumerate(wnids):
            for i in range(per_class):
                write_jpeg(tree / "images" / split / wnid / f"{wnid}_{i}.JPEG", class_image(c, i, size))
    return tree
