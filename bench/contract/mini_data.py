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


# ------------------------------------------------------------------------------- multimodal (OFA's task data sets)
def write_coco_karpathy(root: Path, splits: Sequence[str] = ("train", "restval", "test", "val"),
                        size: tuple[int, int] = (40, 30)) -> Path:
    """ROOT/dataset_coco.json (Karpathy's split file) and one image per entry of `splits` (in order: image n is in
    splits[n]), train2014/ for "train", val2014/ for the rest, as the release; two captions each."""
    root = Path(root)
    images = []
    for n, split in enumerate(splits):
        folder = "train2014" if split == "train" else "val2014"
        name = f"COCO_{folder}_{n:012d}.jpg"
        write_jpeg(root / folder / name, np.ascontiguousarray(class_image(n, 0, max(size))[: size[1], : size[0]]))
        images.append({"filepath": folder, "filename": name, "imgid": n, "cocoid": 100 + n, "split": split,
                       "sentids": [2 * n, 2 * n + 1],
                       "sentences": [{"raw": f"A cat number {n}.", "tokens": ["a", "cat"], "imgid": n, "sentid": 2 * n},
                                     {"raw": f"A dog {n} .", "tokens": ["a", "dog"], "imgid": n, "sentid": 2 * n + 1}]})
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    return root


def write_vqav2(root: Path, split: str, image_ids: Sequence[int], questions_per_image: int = 2,
                size: int = 24) -> Path:
    """ROOT/v2_OpenEnded_mscoco_{split}2014_questions.json, ROOT/v2_mscoco_{split}2014_annotations.json and
    ROOT/{split}2014/COCO_{split}2014_<id>.jpg: `questions_per_image` questions per image, ten answers each."""
    root = Path(root)
    questions, annotations = [], []
    for image_id in image_ids:
        write_jpeg(root / f"{split}2014" / f"COCO_{split}2014_{image_id:012d}.jpg", class_image(image_id, 1, size))
        for k in range(questions_per_image):
            qid = image_id * 10 + k
            answer = str(k + 1)
            questions.append({"image_id": image_id, "question": f"How many things {k}?", "question_id": qid})
            annotations.append({"question_id": qid, "image_id": image_id, "answer_type": "number",
                                "question_type": "how many", "multiple_choice_answer": answer,
                                "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": i + 1}
                                            for i in range(10)]})
    (root / f"v2_OpenEnded_mscoco_{split}2014_questions.json").write_text(json.dumps({"questions": questions}))
    (root / f"v2_mscoco_{split}2014_annotations.json").write_text(json.dumps({"annotations": annotations}))
    return root


def write_snli_ve(root: Path, split: str, image_ids: Sequence[int], size: int = 24) -> Path:
    """ROOT/snli_ve_{split}.jsonl and ROOT/flickr30k_images/<id>.jpg: three pairs per image (entailment,
    contradiction, neutral)."""
    root = Path(root)
    rows = []
    for image_id in image_ids:
        write_jpeg(root / "flickr30k_images" / f"{image_id}.jpg", class_image(image_id, 2, size))
        for label, hypothesis in (("entailment", "Two people are outdoors."), ("contradiction", "They sleep."),
                                  ("neutral", "They are brothers.")):
            rows.append({"Flickr30K_ID": str(image_id), "sentence1": f"Two young guys number {image_id} are outside.",
                         "sentence2": hypothesis, "gold_label": label, "pairID": f"{image_id}-{label}"})
    (root / f"snli_ve_{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


OFA_COCO_SPLITS = ("train",) * 6 + ("restval",) * 4 + ("val",) * 3 + ("test",) * 3  # images 0..15


def write_ofa_tasks(root: Path, coco_splits: Sequence[str] = OFA_COCO_SPLITS, shared: Sequence[int] = (6, 7, 8, 9)
                    ) -> Path:
    """ROOT/{coco_karpathy, vqav2, snli_ve} as scenarios/multimodal/real_streams.py reads them: COCO in Karpathy's
    split (image n in coco_splits[n]); VQAv2 train on 8 images of its own, val on the COCO val2014 images `shared`
    (files captioning's restval holds too, as in the releases); SNLI-VE on 6 / 3 / 3 images."""
    root = Path(root)
    write_coco_karpathy(root / "coco_karpathy", coco_splits)
    write_vqav2(root / "vqav2", "train", range(101, 109))
    write_vqav2(root / "vqav2", "val", shared)
    for split, ids in (("train", range(1, 7)), ("dev", range(11, 14)), ("test", range(21, 24))):
        write_snli_ve(root / "snli_ve", split, ids)
    return root
