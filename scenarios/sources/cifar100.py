"""CIFAR-100 from the official files (https://www.cs.toronto.edu/~kriz/cifar.html), never through plain pickle.

Binary version (preferred): `train.bin` / `test.bin`, each record 1 coarse-label byte, 1 fine-label byte and
3,072 pixel bytes (R, G, B planes of 32x32, row-major), plus `fine_label_names.txt`. The files are memory-mapped,
so nothing is read before an image is asked for.

Python version: `train`, `test`, `meta` pickles. A dataset file must never be able to run code, so they are read
by an unpickler that admits only what the format holds (dicts, lists, bytes, str, ints and numpy uint8 arrays);
any other global in the file is refused with an error naming the file.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from scenarios.sources.base import ArrayRecords, DataSourceError, Source, require_file

RECORD = 2 + 3072
LAYOUT = ("  ROOT/cifar-100-binary/{train.bin, test.bin, fine_label_names.txt}   (binary version), or\n"
          "  ROOT/cifar-100-python/{train, test, meta}                          (python version)")


def _binary(folder: Path) -> Source:
    names_file = require_file(folder / "fine_label_names.txt", "cifar100", LAYOUT)
    names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    if len(names) != 100:
        raise DataSourceError(f"cifar100: {names_file} lists {len(names)} class names, expected 100")
    splits = {}
    for split in ("train", "test"):
        path = require_file(folder / f"{split}.bin", "cifar100", LAYOUT)
        size = path.stat().st_size
        if size == 0 or size % RECORD:
            raise DataSourceError(f"cifar100: {path} has {size} bytes, not a whole number of {RECORD}-byte "
                                  f"records (truncated or not the binary version)")
        raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, RECORD)
        labels = np.asarray(raw[:, 1], dtype=np.int64)
        if labels.max() >= 100:
            raise DataSourceError(f"cifar100: {path} holds fine label {labels.max()}, outside 0..99")
        pixels = raw[:, 2:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # a view: still lazy
        splits[split] = ArrayRecords(pixels, labels, str(path))
    return Source("cifar100", names, splits, root=folder, notes="official binary files")


class _ArraysOnly(pickle.Unpickler):
    """Admits the globals a numpy array's pickle needs, and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-100 file")
        return super().find_class(module, name)


def restricted_load(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = _ArraysOnly(io.BytesIO(handle.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataSourceError(f"cifar100: {path} is not a CIFAR-100 python file: {error}") from None
    if not isinstance(data, dict):
        raise DataSourceError(f"cifar100: {path} does not hold a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _python(folder: Path) -> Source:
    meta = restricted_load(require_file(folder / "meta", "cifar100", LAYOUT))
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("fine_label_names", [])]
    if len(names) != 100:
        raise DataSourceError(f"cifar100: {folder / 'meta'} lists {len(names)} fine class names, expected 100")
    splits = {}
    for split in ("train", "test"):
        path = require_file(folder / split, "cifar100", LAYOUT)
        data = restricted_load(path)
        pixels = np.asarray(data.get("data"), dtype=np.uint8)
        labels = np.asarray(data.get("fine_labels", []), dtype=np.int64)
        if pixels.ndim != 2 or pixels.shape[1] != 3072 or len(pixels) != len(labels):
            raise DataSourceError(f"cifar100: {path} holds data {pixels.shape} and {len(labels)} fine labels; "
                                  f"expected (N, 3072) and N")
        splits[split] = ArrayRecords(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels, str(path))
    return Source("cifar100", names, splits, root=folder, notes="official python files (restricted unpickler)")


def open_cifar100(root: Path) -> Source:
    """CIFAR-100 under `root` (or `root` itself being the cifar-100-binary / cifar-100-python folder)."""
    root = Path(root)
    for folder in (root / "cifar-100-binary", root):
        if (folder / "train.bin").exists() or (folder / "fine_label_names.txt").exists():
            return _binary(folder)
    for folder in (root / "cifar-100-python", root):
        if (folder / "meta").exists():
            return _python(folder)
    raise DataSourceError(f"cifar100: no CIFAR-100 files under {root}; expected layout:\n{LAYOUT}")
