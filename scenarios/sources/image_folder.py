"""A user's own images, no code needed: `root/<class>/*.jpg`, or `root/<domain>/<class>/*.jpg` with domains.

Split: `root/train/...` and `root/test/...` when both exist, else a seeded 80/20 split within each class (and
domain), seed 0.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scenarios.sources.base import (DataSourceError, FileRecords, Source, class_folders, folder_records,
                                    fraction_split, image_files, require_dir)

LAYOUT = ("  ROOT/<class>/*.jpg                  (no domains), or\n"
          "  ROOT/<domain>/<class>/*.jpg         (domains: the same class folders in every domain)\n"
          "  optionally split: ROOT/train/..., ROOT/test/...")
SPLIT_SEED = 0


def _has_domains(tree: Path) -> bool:
    subs = [p for p in tree.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bool(subs) and all(not image_files(s) and any(c.is_dir() for c in s.iterdir()) for s in subs)


def _records(base: Path, tree: Path) -> tuple[FileRecords, list[str], list[str]]:
    if not _has_domains(tree):
        folders = class_folders(tree, "image_folder", LAYOUT)
        return folder_records(base, folders), [f.name for f in folders], []
    domains = sorted(p.name for p in tree.iterdir() if p.is_dir() and not p.name.startswith("."))
    parts, names = [], None
    for domain in domains:
        folders = class_folders(tree / domain, "image_folder", LAYOUT)
        found = [f.name for f in folders]
        if names is not None and found != names:
            raise DataSourceError(f"image_folder: {tree / domain} has classes {found[:5]}..., other domains "
                                  f"have {names[:5]}...; every domain needs the same class folders")
        names = found
        parts.append(folder_records(base, folders, domain))
    records = FileRecords(base, [p for r in parts for p in r.paths], np.concatenate([r.labels for r in parts]),
                          [d for r in parts for d in r.domains])
    return records, names, domains


def open_image_folder(root: Path) -> Source:
    tree = require_dir(Path(root), "image_folder", LAYOUT)
    if (tree / "train").is_dir() and (tree / "test").is_dir():
        train, names, domains = _records(tree, tree / "train")
        test, test_names, _ = _records(tree, tree / "test")
        if test_names != names:
            raise DataSourceError(f"image_folder: {tree / 'test'} and {tree / 'train'} have different classes")
        return Source("image_folder", names, {"train": train, "test": test}, domains=domains, root=tree,
                      notes="train/ and test/ folders as given")
    everything, names, domains = _records(tree, tree)
    strata = everything.labels
    if domains:  # stratify by (domain, class), so every domain keeps every class on both sides
        strata = strata * len(domains) + np.asarray([domains.index(d) for d in everything.domains])
    train, test = fraction_split(strata, 0.2, SPLIT_SEED)
    return Source("image_folder", names, {"train": everything.subset(train), "test": everything.subset(test)},
                  domains=domains, root=tree, notes=f"per-class seeded 80/20 split (seed {SPLIT_SEED})")
