"""Scenarios built from an on-disk data source by a protocol: the real-data counterparts of scenarios/streams.py.

A builder opens its source (a missing root or wrong layout raises `DataSourceError` before anything else), asks a
protocol which records go where, and wraps the chosen records without decoding them: file-based images stay on
disk (`LazyImages`, decoded batch by batch by DataLoader workers at the backbone's input size), array-based ones
(CIFAR-100) are copied into the in-memory uint8 tensor, which at 32 px is smaller than one decoded batch queue.
avalanche-lib's benchmark objects are not built here: they would wrap every record in per-item datasets that the
harness would then read back image by image; the protocols in scenarios/protocols already give the exact split.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from bench.core.data import EvalSet, LazyImages, Preprocess, TensorData, TrainStep
from scenarios.protocols import (adaptation_indices, base_new_classes, class_order, coop_few_shot, domain_indices,
                                 exact_split, indices_of)
from scenarios.sources import Source, open_source
from scenarios.sources.base import ArrayRecords
from scenarios.streams import Scenario


def records_data(records, rows: Sequence[int], preprocess: Preprocess, unlabelled: bool = False) -> TensorData:
    """The records `rows` as harness data: in memory for arrays, lazily decoded for files."""
    rows = np.asarray(rows, dtype=np.int64)
    labels = torch.from_numpy(records.labels[rows].copy()).long()
    if unlabelled:
        labels = torch.full_like(labels, -1)  # the adaptation protocol never shows target labels to training
    if isinstance(records, ArrayRecords):
        pixels = np.ascontiguousarray(np.asarray(records.pixels[rows]).transpose(0, 3, 1, 2))
        return TensorData(torch.from_numpy(pixels), labels)
    return TensorData(LazyImages.of(records, rows, preprocess), labels)


def _source_facts(source: Source) -> dict[str, Any]:
    return {"name": source.name, "root": str(source.root) if source.root else None, "split": source.notes,
            "num_classes": source.num_classes}


def _open(source: str, data_root: str | None, fingerprint: str | None = None, **kwargs: Any) -> Source:
    """The source; from the listing cached under the cell's data fingerprint when it has one (no folder walk)."""
    from scenarios.identity import open_listed

    return open_listed(source, data_root, fingerprint, **kwargs)


def _shots(records, rows: np.ndarray, shots: int | None, seed: int) -> np.ndarray:
    if shots is None:
        return rows
    picked, _ = coop_few_shot(records.labels[rows], shots, seed)
    return rows[picked]


def source_class_incremental(name: str, seed: int, dataset: str, num_tasks: int = 10, order: str = "seeded",
                             shots: int | None = None, data_root: str | None = None,
                             fingerprint: str | None = None) -> Scenario:
    """Split <source>: classes in `num_tasks` groups of a class order (seeded, PyCIL's seed 1993, or sorted);
    train on each group's training records, evaluate on every group's test records among all classes seen."""
    src = _open(dataset, data_root, fingerprint)
    pre = Preprocess()
    train, test = src.split("train"), src.split("test")
    order_list = class_order(src.num_classes, seed, order)
    groups = exact_split(order_list, num_tasks)
    steps, evals = [], []
    for j, group in enumerate(groups):
        rows = _shots(train, indices_of(train.labels, group), shots, seed)
        steps.append(TrainStep(records_data(train, rows, pre), sorted(group), None))
        evals.append(EvalSet(f"task{j + 1}", records_data(test, indices_of(test.labels, group), pre)))
    return Scenario(name, "class_incremental", seed, None, steps, evals, list(src.class_names), [], order_list,
                    domains=list(src.domains), source=_source_facts(src) | {"class_order": order},
                    preprocess=pre)


def source_domain_incremental(name: str, seed: int, dataset: str, domains: Sequence[str] | None = None,
                              shots: int | None = None, data_root: str | None = None,
                              fingerprint: str | None = None) -> Scenario:
    """Every class in every step; the domain changes in the given order; one test set per domain."""
    src = _open(dataset, data_root, fingerprint,
                **({"domains": tuple(domains)} if domains and dataset == "domainnet" else {}))
    pre = Preprocess()
    order = list(domains or src.domains)
    train, test = src.split("train"), src.split("test")
    if train.domains is None:
        raise ValueError(f"source {dataset!r} has no domains; domain-incremental needs them")
    classes = list(range(src.num_classes))
    steps = [TrainStep(records_data(train, _shots(train, domain_indices(train.domains, d), shots, seed), pre),
                       classes, d) for d in order]
    evals = [EvalSet(d, records_data(test, domain_indices(test.domains, d), pre)) for d in order]
    return Scenario(name, "domain_incremental", seed, None, steps, evals, list(src.class_names), [], classes,
                    domains=order, source=_source_facts(src), preprocess=pre)


def source_base_to_new(name: str, seed: int, dataset: str, shots: int | None = 16,
                       data_root: str | None = None, fingerprint: str | None = None) -> Scenario:
    """CoOp / CoCoOp base-to-new: few-shot draw on the training split (CoOp's rule and seed), then labels sorted,
    the first ceil(n/2) base, the rest new; train on base, test base and new each among its own classes."""
    src = _open(dataset, data_root, fingerprint)
    pre = Preprocess()
    train, test = src.split("train"), src.split("test")
    base, new = base_new_classes(src.num_classes, "coop")
    all_rows = np.arange(len(train))
    rows = _shots(train, all_rows, shots, seed)
    rows = rows[np.isin(train.labels[rows], base)]
    steps = [TrainStep(records_data(train, np.sort(rows), pre), base, None)]
    evals = [EvalSet("base", records_data(test, indices_of(test.labels, base), pre), base),
             EvalSet("new", records_data(test, indices_of(test.labels, new), pre), new)]
    return Scenario(name, "base_to_new", seed, None, steps, evals, list(src.class_names), [], base + new,
                    source=_source_facts(src) | {"few_shot": "CoOp (Dassl generate_fewshot_dataset)"},
                    preprocess=pre)


def source_adaptation(name: str, seed: int, dataset: str, source_domain: str, target_domain: str,
                      data_root: str | None = None, fingerprint: str | None = None) -> Scenario:
    """Unsupervised adaptation: source images labelled, target images unlabelled; evaluated on the target.

    Office-Home (no official split, as DAPL): train on every source image, adapt on every target image, evaluate on
    every target image; the "source" evaluation set is then the source training images themselves. Sources with a
    train/test split (DomainNet): train and adapt on the train lists, evaluate on the test lists."""
    src = _open(dataset, data_root, fingerprint)
    pre = Preprocess()
    train = src.split("all") if "all" in src.splits else src.split("train")
    test = src.split("all") if "all" in src.splits else src.split("test")
    if train.domains is None:
        raise ValueError(f"source {dataset!r} has no domains; adaptation needs them")
    src_rows, tgt_rows = adaptation_indices(train.domains, source_domain, target_domain)
    src_test, tgt_test = adaptation_indices(test.domains, source_domain, target_domain)
    classes = list(range(src.num_classes))
    steps = [TrainStep(records_data(train, src_rows, pre), classes, source_domain,
                       unlabelled=records_data(train, tgt_rows, pre, unlabelled=True))]
    evals = [EvalSet("source", records_data(test, src_test, pre)),
             EvalSet("target", records_data(test, tgt_test, pre))]
    return Scenario(name, "domain_adaptation", seed, None, steps, evals, list(src.class_names), [], classes,
                    domains=[source_domain, target_domain], source_domain=source_domain,
                    target_domain=target_domain, source=_source_facts(src), preprocess=pre)


SOURCE_BUILDERS = {"class_incremental": source_class_incremental, "domain_incremental": source_domain_incremental,
                   "base_to_new": source_base_to_new, "domain_adaptation": source_adaptation}


def configure_preprocess(scenario: Scenario, backbone: torch.nn.Module) -> None:
    """Set a scenario's decode geometry from the cell's backbone, as its own eval transform does: the input size,
    and timm's crop_pct / interpolation (open_clip: resize the shorter side, centre crop, bicubic)."""
    if scenario.preprocess is None:
        return
    visual = getattr(backbone, "visual", backbone)
    size = int(getattr(visual, "input_size", scenario.preprocess.size))
    crop_pct, interpolation = 1.0, "bicubic"
    encoder = getattr(visual, "encoder", None)
    cfg = getattr(encoder, "pretrained_cfg", None) if getattr(visual, "flavour", "") == "timm" else None
    if cfg:
        crop_pct = float(cfg.get("crop_pct", 0.875) or 1.0)
        interpolation = cfg.get("interpolation", "bicubic") if cfg.get("interpolation") in (
            "bicubic", "bilinear", "nearest") else "bicubic"
    scenario.preprocess.size, scenario.preprocess.crop_pct = size, crop_pct
    scenario.preprocess.interpolation = interpolation
    from bench.models.backbones import eval_geometry

    scenario.preprocess.geometry = eval_geometry(backbone)  # the library's own resize and crop, pixel for pixel
