"""ImageNet-R (Hendrycks et al. 2021, https://github.com/hendrycks/imagenet-r): `imagenet-r/<wnid>/*.jpg`,
200 ImageNet classes, 30,000 images, no official split.

L2P, DualPrompt, CODA-Prompt and PILOT each use a fixed random 80/20 train/test split. Ours is a per-class seeded
80/20 split (seed 0, `fraction_split`), so membership is fixed across runs but is not any one paper's draw. A tree
that is already split (`imagenet-r/train/<wnid>`, `imagenet-r/test/<wnid>`, as PILOT ships it) is used as given.
Class names come from timm's ImageNet tables (the 200 ImageNet-R wnids and their WordNet lemmas).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from scenarios.sources.base import (DataSourceError, Source, class_folders, folder_records,
                                    fraction_split, require_dir)

LAYOUT = ("  ROOT/imagenet-r/<wnid>/*.jpg          200 wnid folders (the official archive), or\n"
          "  ROOT/imagenet-r/{train,test}/<wnid>/   a tree already split 80/20")
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def _timm_table(name: str) -> str:
    """A text table from timm's package data, found without importing timm (which takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        raise DataSourceError("imagenet_r: class names come from timm's ImageNet tables, but timm is not installed")
    return (Path(spec.origin).parent / "data" / "_info" / name).read_text()


@lru_cache(maxsize=1)
def imagenet_r_wnids() -> list[str]:
    """The 200 ImageNet-R wnids, from the table timm ships (timm/data/_info/imagenet_r_synsets.txt)."""
    return [line.strip() for line in _timm_table("imagenet_r_synsets.txt").splitlines() if line.strip()]


@lru_cache(maxsize=1)
def _lemmas() -> dict[str, str]:
    text = _timm_table("imagenet_synset_to_lemma.txt")
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def wnid_name(wnid: str) -> str:
    """The first WordNet lemma of a wnid ("n01443537" -> "goldfish"); the wnid itself when timm lacks it."""
    return _lemmas().get(wnid, wnid).split(",")[0].strip()


def _check_wnids(folders: list[Path], where: Path) -> None:
    names = [f.name for f in folders]
    expected = imagenet_r_wnids()
    if names != sorted(expected):
        unknown = sorted(set(names) - set(expected))[:3]
        missing = sorted(set(expected) - set(names))[:3]
        raise DataSourceError(f"imagenet_r: {where} has {len(names)} class folders, expected the 200 ImageNet-R "
                              f"wnids (unknown e.g. {unknown}, missing e.g. {missing}); layout:\n{LAYOUT}")


def open_imagenet_r(root: Path) -> Source:
    root = Path(root)
    tree = root / "imagenet-r" if (root / "imagenet-r").is_dir() else root
    require_dir(tree, "imagenet_r", LAYOUT)
    if (tree / "train").is_dir() and (tree / "test").is_dir():
        splits = {}
        for split in ("train", "test"):
            folders = class_folders(tree / split, "imagenet_r", LAYOUT)
            _check_wnids(folders, tree / split)
            splits[split] = folder_records(tree, folders)
        wnids = [f.name for f in folders]
        notes = "pre-split tree used as given"
    else:
        folders = class_folders(tree, "imagenet_r", LAYOUT)
        _check_wnids(folders, tree)
        everything = folder_records(tree, folders)
        train, test = fraction_split(everything.labels, TEST_FRACTION, SPLIT_SEED)
        splits = {"train": everything.subset(train), "test": everything.subset(test)}
        wnids = [f.name for f in folders]
        notes = f"per-class seeded 80/20 split (seed {SPLIT_SEED}); not any one paper's draw"
    return Source("imagenet_r", [wnid_name(w) for w in wnids], splits, root=tree, notes=notes)

