"""What every data source is: class names, optional domains, official splits of lazily loaded records.

A source module opens one on-disk format (or the embedded glyphs/digits) and returns a `Source`. Nothing here
reads pixels until `load(i)` is called, so opening a 50,000-image folder costs one directory walk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


class DataSourceError(ValueError):
    """A data source is missing or not in its expected layout; the message names the file or folder and what
    was expected there."""


def open_image(path: Path):
    """An RGB PIL image, fully decoded now (a truncated file fails here, not later in a worker)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


@dataclass
class FileRecords:
    """Records backed by image files: `paths[i]` (relative to `root`), `labels[i]`, optional `domains[i]`."""

    root: Path
    paths: list[str]
    labels: np.ndarray
    domains: list[str] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.paths) != len(self.labels):
            raise ValueError("paths and labels differ in length")

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> Path:
        return self.root / self.paths[i]

    def load(self, i: int):
        return open_image(self.path(i))

    def describe(self, i: int) -> str:
        return str(self.path(i))

    def subset(self, rows: Sequence[int]) -> "FileRecords":
        rows = [int(r) for r in rows]
        return FileRecords(self.root, [self.paths[r] for r in rows], self.labels[rows],
                           [self.domains[r] for r in rows] if self.domains is not None else None)


@dataclass
class ArrayRecords:
    """Records backed by a `(N, H, W, 3)` uint8 array (in memory or a numpy memmap of the official file)."""

    pixels: np.ndarray
    labels: np.ndarray
    where: str
    domains: list[str] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int):
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(self.pixels[i]), "RGB")

    def describe(self, i: int) -> str:
        return f"{self.where} record {i}"


@dataclass
class Source:
    """A labelled image collection: class names (index = label), its domains and its official splits."""

    name: str
    class_names: list[str]
    splits: dict[str, FileRecords | ArrayRecords]
    domains: list[str] = field(default_factory=list)
    root: Path | None = None
    notes: str = ""  # how the split / names were obtained, recorded with every result

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str):
        if name not in self.splits:
            raise DataSourceError(f"source {self.name!r} has no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]


# ------------------------------------------------------------------------------------------- layout checks
def require_dir(path: Path, source: str, layout: str) -> Path:
    if not path.is_dir():
        raise DataSourceError(f"{source}: folder {path} does not exist; expected layout:\n{layout}")
    return path


def require_file(path: Path, source: str, layout: str) -> Path:
    if not path.is_file():
        raise DataSourceError(f"{source}: file {path} does not exist; expected layout:\n{layout}")
    return path


def read_table(path: Path, columns: int, source: str) -> list[list[str]]:
    """Whitespace-separated rows of a text list (blank lines skipped); a short row names its line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < columns:
            raise DataSourceError(f"{source}: {path} line {number}: expected {columns} fields, got {line!r}")
        # paths may hold spaces ("Real World/..."): everything but the last columns-1 fields is the first field
        rows.append([" ".join(parts[:len(parts) - columns + 1]), *parts[len(parts) - columns + 1:]])
    if not rows:
        raise DataSourceError(f"{source}: {path} is empty")
    return rows


def check_files_exist(records: FileRecords, source: str, listed_in: str) -> FileRecords:
    """Every listed image must exist: the first missing one is named with the list that names it."""
    for i in range(len(records)):
        if not records.path(i).is_file():
            raise DataSourceError(f"{source}: {listed_in} names {records.paths[i]!r}, but {records.path(i)} "
                                  f"does not exist")
    return records


def is_hidden(name: str) -> bool:
    """Hidden files and macOS AppleDouble companions (`._x.jpg`, `.DS_Store`), which no official reader lists:
    torchvision's ImageFolder and Dassl's `listdir_nohidden` skip every name starting with a dot."""
    return name.startswith(".")


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, sorted; hidden and AppleDouble files skipped, `Thumbs.db` is not an image."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p.name))


def class_folders(root: Path, source: str, layout: str) -> list[Path]:
    """Sub-folders of `root`, sorted by name; each must hold at least one image."""
    require_dir(root, source, layout)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    if not folders:
        raise DataSourceError(f"{source}: {root} has no class folders; expected layout:\n{layout}")
    for folder in folders:
        if not image_files(folder):
            raise DataSourceError(f"{source}: class folder {folder} holds no images "
                                  f"({', '.join(IMAGE_SUFFIXES)})")
    return folders


Opener = Callable[..., Source]


def fraction_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A per-class seeded split of record indices (sorted): in each class, `round(n * test_fraction)` records,
    at least one when the class has two or more, go to test. Stratified so every class is in both splits."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        shuffled = members[rng.permutation(len(members))]
        k = int(round(len(members) * test_fraction))
        k = min(max(k, 1 if len(members) > 1 else 0), len(members) - 1) if len(members) > 1 else 0
        test.extend(shuffled[:k].tolist())
        train.extend(shuffled[k:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(test), dtype=np.int64)


def folder_records(root: Path, folders: Sequence[Path], domain: str | None = None) -> FileRecords:
    """Every image of the class folders, labelled by folder position, paths relative to `root`."""
    paths, labels = [], []
    for label, folder in enumerate(folders):
        for file in image_files(folder):
            paths.append(str(file.relative_to(root)))
            labels.append(label)
    return FileRecords(root, paths, np.asarray(labels), [domain] * len(paths) if domain is not None else None)
