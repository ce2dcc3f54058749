"""The data types the training loop, the strategies and the scenarios share: defined below all three, so that
neither scenarios nor strategies import the loop for its types."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


class RecordSet(Protocol):
    """One split of an on-disk data source (see scenarios/sources): labels plus lazy access to each image."""

    labels: np.ndarray  # int64 class index per record

    def __len__(self) -> int: ...

    def load(self, i: int) -> Any:  # a PIL.Image in RGB
        ...

    def describe(self, i: int) -> str:  # "where" record i lives, for error messages
        ...


class ImageDecodeError(RuntimeError):
    """An image could not be read or decoded; the message names the file (or record)."""


@dataclass
class Preprocess:
    """Decode-time geometry, as the backbone's own eval transform (timm data config / open_clip preprocess):
    resize the shorter side to `size / crop_pct`, centre-crop `size` x `size`. Pixels stay uint8 in [0, 255]:
    normalisation happens inside the backbone. Mutable on purpose: one object is shared by every view of a
    scenario's data, and `prepare` sets it from the cell's backbone."""

    size: int = 224
    crop_pct: float = 1.0
    interpolation: str = "bicubic"
    geometry: Any = None  # the library's own resize + crop (bench.models.backbones.eval_geometry), when set

    def __call__(self, image: Any) -> torch.Tensor:
        from PIL import Image

        if self.geometry is not None:
            array = np.asarray(self.geometry(image.convert("RGB")), dtype=np.uint8)
            return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

        resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                    "nearest": Image.Resampling.NEAREST}[self.interpolation]
        scale = int(round(self.size / self.crop_pct))
        w, h = image.size
        if (w, h) != (self.size, self.size) or scale != self.size:
            if w <= h:
                nw, nh = scale, max(scale, int(round(h * scale / w)))
            else:
                nw, nh = max(scale, int(round(w * scale / h))), scale
            image = image.resize((nw, nh), resample)
            left, top = (nw - self.size) // 2, (nh - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class LazyImages:
    """Images of one or more `RecordSet`s, decoded only when asked for. Reads like the uint8 `(N, 3, H, W)`
    tensor of `TensorData`: `images[index]` decodes those images into such a tensor, so the training loop is the
    same for both; `select` / `concat` make new views without decoding anything."""

    def __init__(self, records: Sequence[RecordSet], which: np.ndarray, rows: np.ndarray,
                 preprocess: Preprocess) -> None:
        self.records, self.which, self.rows, self.preprocess = list(records), which, rows, preprocess

    @classmethod
    def of(cls, records: RecordSet, rows: Sequence[int], preprocess: Preprocess) -> "LazyImages":
        rows = np.asarray(rows, dtype=np.int64)
        return cls([records], np.zeros(len(rows), dtype=np.int64), rows, preprocess)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), 3, self.preprocess.size, self.preprocess.size)

    def describe(self, i: int) -> str:
        return self.records[int(self.which[i])].describe(int(self.rows[i]))

    def decode(self, i: int) -> torch.Tensor:
        """Image i as uint8 `(3, size, size)`; a broken file raises `ImageDecodeError` naming it."""
        records, row = self.records[int(self.which[i])], int(self.rows[i])
        if isinstance(records, TensorRecords) and tuple(records.images.shape[-2:]) == (self.preprocess.size,) * 2:
            return records.tensor(row)  # already decoded at this size
        try:
            return self.preprocess(records.load(row))
        except ImageDecodeError:
            raise
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for broken files
            raise ImageDecodeError(f"cannot read image {records.describe(row)}: {type(error).__name__}: "
                                   f"{error}") from error

    def _positions(self, index: Any) -> np.ndarray:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return np.arange(len(self))[index]

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, (int, np.integer)):
            return self.decode(int(index))
        positions = np.atleast_1d(self._positions(index))
        if len(positions) == 0:
            return torch.zeros(0, 3, self.preprocess.size, self.preprocess.size, dtype=torch.uint8)
        pool = _decode_pool(len(positions))
        if pool is None:
            return torch.stack([self.decode(int(p)) for p in positions])
        # Random-access batches (training, pixel-reading evaluation): Pillow releases the GIL while it decodes
        # and resizes, so threads decode a batch in parallel without the process start-up of DataLoader workers.
        return torch.stack(list(pool.map(self.decode, positions.tolist())))

    def select(self, index: Any) -> "LazyImages":
        positions = np.atleast_1d(self._positions(index))
        return LazyImages(self.records, self.which[positions], self.rows[positions], self.preprocess)

    @staticmethod
    def concat(parts: Sequence["LazyImages"]) -> "LazyImages":
        records: list[RecordSet] = []
        which, rows = [], []
        for part in parts:
            ids = []
            for rec in part.records:  # the same record set in two parts keeps one slot
                match = next((k for k, r in enumerate(records) if r is rec), None)
                if match is None:
                    records.append(rec)
                    match = len(records) - 1
                ids.append(match)
            which.append(np.asarray(ids, dtype=np.int64)[part.which] if len(part) else part.which)
            rows.append(part.rows)
        preprocess = parts[0].preprocess if parts else Preprocess()
        return LazyImages(records, np.concatenate(which) if which else np.zeros(0, np.int64),
                          np.concatenate(rows) if rows else np.zeros(0, np.int64), preprocess)


class TensorRecords:
    """In-memory uint8 `(N, 3, H, W)` images as a record set, so they can join on-disk data in one `LazyImages`
    (a replay memory read back from avalanche next to a task's on-disk images)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels.numpy().astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def tensor(self, i: int) -> torch.Tensor:
        return self.images[i]

    def load(self, i: int) -> Any:
        from PIL import Image

        return Image.fromarray(self.images[i].permute(1, 2, 0).numpy(), "RGB")

    def describe(self, i: int) -> str:
        return f"in-memory image {i}"


class _Decoded(torch.utils.data.Dataset):
    def __init__(self, images: LazyImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images.decode(i)


_POOL: "ThreadPoolExecutor | None" = None


def _decode_pool(n: int) -> "ThreadPoolExecutor | None":
    global _POOL
    threads = loader_workers(n * 64)  # a batch is worth threads even when small
    if threads <= 1:
        return None
    if _POOL is None or _POOL._max_workers != threads:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="promptshift-decode")
    return _POOL


def loader_workers(n: int) -> int:
    """DataLoader workers for decoding n images: `PROMPTSHIFT_LOADER_WORKERS`, else one per core up to 8; none
    for small sets, where starting worker processes costs more than decoding."""
    env = os.environ.get("PROMPTSHIFT_LOADER_WORKERS")
    if env is not None:
        return max(0, int(env))
    return 0 if n < 512 else min(8, os.cpu_count() or 1)


@dataclass
class TensorData:
    """A materialised data set: pixels in [0, 1] `(N, 3, H, W)` (uint8 storage), labels, optional frozen cache."""

    images: torch.Tensor | LazyImages  # uint8 (or decoded on demand), converted to float per batch
    labels: torch.Tensor  # int64 class indices in the scenario's class space; -1 when unlabelled
    cached: torch.Tensor | None = None  # frozen_inputs() of every image, filled by the harness

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> "TensorData":
        cached = self.cached[index] if self.cached is not None else None
        images = self.images.select(index) if isinstance(self.images, LazyImages) else self.images[index]
        return TensorData(images, self.labels[index], cached)

    @staticmethod
    def concat(parts: Sequence["TensorData"]) -> "TensorData":
        caches = [p.cached for p in parts]
        cached = torch.cat(caches) if all(c is not None for c in caches) else None
        lazy = [p.images for p in parts if isinstance(p.images, LazyImages)]
        if lazy:  # in-memory parts join as record sets of their own
            images = LazyImages.concat([p.images if isinstance(p.images, LazyImages) else
                                        LazyImages.of(TensorRecords(p.images, p.labels), range(len(p)),
                                                      lazy[0].preprocess) for p in parts])
        else:
            images = torch.cat([p.images for p in parts])
        return TensorData(images, torch.cat([p.labels for p in parts]), cached)

    @property
    def lazy(self) -> bool:
        return isinstance(self.images, LazyImages)


def image_batches(data: TensorData, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(index, uint8 images) in order, batch by batch: slices of the tensor, or images decoded from disk by a
    torch DataLoader with worker processes (so decoding overlaps the model's forward pass)."""
    n = len(data)
    if not isinstance(data.images, LazyImages):
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(n, start + batch_size))
            yield index, data.images[index]
        return
    workers = loader_workers(n)
    loader = torch.utils.data.DataLoader(_Decoded(data.images), batch_size=batch_size, shuffle=False,
                                         num_workers=workers, prefetch_factor=4 if workers else None,
                                         pin_memory=torch.cuda.is_available())
    start = 0
    for images in loader:
        yield torch.arange(start, start + len(images)), images
        start += len(images)


@dataclass
class Batch:
    """One training batch. `target_*` hold an unlabelled target-domain batch for adaptation strategies."""

    x: torch.Tensor | None
    y: torch.Tensor
    cached: torch.Tensor | None = None
    target_x: torch.Tensor | None = None
    target_cached: torch.Tensor | None = None


@dataclass
class ScenarioInfo:
    """What a strategy may know about the scenario when it is built."""

    kind: str
    num_classes: int
    class_names: list[str]
    domains: list[str] = field(default_factory=list)  # style domains in this scenario (for DAPL-like methods)
    source_domain: str | None = None
    target_domain: str | None = None


@dataclass
class TaskContext:
    """What the harness tells a strategy at the start and end of each training step."""

    index: int
    num_steps: int
    train_classes: list[int]  # classes present in this step's training data
    seen_classes: list[int]  # every class trained on so far, this step included: the training label space
    domain: str | None
    train_data: TensorData
    unlabelled: TensorData | None = None  # target-domain images without labels (domain adaptation)


@dataclass
class TrainStep:
    """One training step of a scenario, as the harness consumes it."""

    data: TensorData
    classes: list[int]
    domain: str | None = None
    unlabelled: TensorData | None = None


@dataclass
class EvalSet:
    """One evaluation set. `label_space`: classes to predict among; None means "every class seen so far"."""

    name: str
    data: TensorData
    label_space: list[int] | None = None


def label_space_for(eval_set: EvalSet, seen: Sequence[int]) -> list[int]:
    """The classes an evaluation set is predicted among: its own label space, else every class trained on."""
    return list(eval_set.label_space) if eval_set.label_space is not None else list(seen)
