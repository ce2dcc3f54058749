"""Data sources: one module per on-disk format (plus the embedded glyphs and digits), one interface.

`open_source(name, root)` returns a `Source`: class names, domains, and per official split a record set with
`labels`, `domains`, `__len__`, `load(i) -> PIL RGB image` and `describe(i)`. Nothing is decoded before `load`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from scenarios.sources.base import DataSourceError, Source

DATA_ENV = "PROMPTSHIFT_DATA"
# OFA's task data sets (COCO Karpathy, VQAv2, SNLI-VE) under one root: read by scenarios/multimodal/real_streams.py
# into multimodal streams, not a classification `Source`, so it is not in SOURCES; its data sets' sub-folders:
MULTIMODAL_SOURCE = "ofa_tasks"
MULTIMODAL_FOLDERS = ("coco_karpathy", "vqav2", "snli_ve")


def _opener(module: str, function: str, **fixed: Any) -> Callable[..., Source]:
    def open_(root: Path, **kwargs: Any) -> Source:
        import importlib

        return getattr(importlib.import_module(f"scenarios.sources.{module}"), function)(root, **fixed, **kwargs)
    return open_


def _layout(module: str, *args: str) -> Callable[[], str]:
    def text() -> str:
        import importlib

        mod = importlib.import_module(f"scenarios.sources.{module}")
        return mod.layout(*args) if args else mod.LAYOUT
    return text


# name -> (opener(root, **kw), layout text, where the data comes from)
SOURCES: dict[str, tuple[Callable[..., Source], Callable[[], str], str]] = {
    "cifar100": (_opener("cifar100", "open_cifar100"), _layout("cifar100"),
                 "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-100 binary or python version)"),
    "imagenet_r": (_opener("imagenet_r", "open_imagenet_r"), _layout("imagenet_r"),
                   "https://github.com/hendrycks/imagenet-r (imagenet-r.tar)"),
    "cub200": (_opener("cub200", "open_cub200"), _layout("cub200"),
               "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"),
    "domainnet": (_opener("domainnet", "open_domainnet"), _layout("domainnet"),
                  "http://ai.bu.edu/M3SDA/ (six domain zips + the cleaned train/test lists)"),
    "office_home": (_opener("office_home", "open_office_home"), _layout("office_home"),
                    "https://www.hemanthdv.org/officeHomeDataset.html (OfficeHomeDataset_10072016)"),
    "image_folder": (_opener("image_folder", "open_image_folder"), _layout("image_folder"),
                     "your own images"),
}


def _add_coop() -> None:
    from scenarios.sources.coop import COOP_DATASETS

    for name in COOP_DATASETS:
        SOURCES[f"coop_{name}"] = (_opener("coop", "open_coop", dataset=name), _layout("coop", name),
                                   "CoOp's DATASETS.md (https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md)")


_add_coop()


# Cheap presence checks for `list` and `plan` (one stat each; `open_source` checks the whole layout).
_MARKERS: dict[str, tuple[str, ...]] = {
    "cifar100": ("cifar-100-binary/train.bin", "cifar-100-python/meta", "train.bin", "meta"),
    "imagenet_r": ("imagenet-r",),
    "cub200": ("CUB_200_2011/images.txt", "images.txt"),
    "domainnet": ("domainnet/clipart_train.txt", "clipart_train.txt"),
    "office_home": ("office_home", "OfficeHomeDataset_10072016", "office-home", "OfficeHome"),
    "image_folder": (".",),
}


def _markers(name: str) -> tuple[str, ...]:
    if name.startswith("coop_"):
        from scenarios.sources.coop import SPLIT_JSON

        dataset = name[len("coop_"):]
        if dataset in SPLIT_JSON:
            folder, _, split = SPLIT_JSON[dataset]
            return (f"{folder}/{split}",)
        return ("fgvc_aircraft/variants.txt",) if dataset == "fgvc_aircraft" else ("imagenet/classnames.txt",)
    return _MARKERS[name]


def source_status(name: str, root: str | Path | None = None) -> tuple[bool, str]:
    """(found, one line): whether the source's top-level files are under the data root (not a full check)."""
    where = data_root(root)
    if where is None:
        return False, "no data root"
    if name == MULTIMODAL_SOURCE:  # one folder per data set, all needed by the full stream
        missing = [f for f in MULTIMODAL_FOLDERS if not (where / f).is_dir()]
        return not missing, f"missing {', '.join(missing)} in {where}" if missing else f"found in {where}"
    for marker in _markers(name):
        if (where / marker).exists():
            return True, f"found in {where}"
    return False, f"missing in {where}"


def data_root(root: str | Path | None = None) -> Path | None:
    """The data root: the explicit `--data-root`, else the `PROMPTSHIFT_DATA` environment variable, else None."""
    if root is not None:
        return Path(root)
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


def expected_layout(name: str) -> str:
    return SOURCES[name][1]()


def open_source(name: str, root: str | Path | None = None, **kwargs: Any) -> Source:
    """Open a named on-disk source under the data root; a missing root or layout raises `DataSourceError`
    naming the source and the layout it expects (never a silent fallback to embedded data)."""
    if name not in SOURCES:
        raise DataSourceError(f"unknown data source {name!r}; valid: {', '.join(sorted(SOURCES))}")
    return SOURCES[name][0](require_root(name, root, expected_layout(name)), **kwargs)


def require_root(name: str, root: str | Path | None, layout: str) -> Path:
    """The data root of source `name`; `DataSourceError` naming the source and its `layout` when there is none or
    it does not exist."""
    where = data_root(root)
    if where is None:
        raise DataSourceError(f"source {name!r} needs a data root: pass --data-root DIR or set {DATA_ENV}=DIR; "
                              f"expected layout under it:\n{layout}")
    if not where.is_dir():
        raise DataSourceError(f"source {name!r}: data root {where} does not exist; expected layout:\n{layout}")
    return where


__all__ = ["DATA_ENV", "DataSourceError", "SOURCES", "Source", "data_root", "expected_layout", "open_source",
           "require_root", "source_status"]
