"""Scenarios as pure functions of (spec, seed), built on avalanche-lib's benchmark objects.

Each builder renders (or loads) its data, wraps it in avalanche `ClassificationDataset`s, asks avalanche for the
`CLScenario`, and then reads the streams back into the harness's `TrainStep` / `EvalSet` form. Two avalanche-lib
0.6 behaviours are guarded here: `class_incremental_benchmark` silently drops leftover classes when the class
count is not divisible by the number of experiences (we always pass an exact `num_classes_per_exp`), and it reseeds
the global torch RNG when given a seed (we never give it one: the class order comes from a local generator).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from bench.core.data import EvalSet, Preprocess, ScenarioInfo, TensorData, TrainStep
from bench.core.seeding import derive_seed
from scenarios import glyphs
from scenarios.protocols import base_new_classes, class_order, exact_split, seeded_few_shot

DIGIT_CLASSES = list(range(10))  # the glyph data set's first ten classes are the digits 0..9


# -------------------------------------------------------------------------------------- avalanche plumbing
class _ImageArray(torch.utils.data.Dataset):
    """Images `(N, 3, H, W)` uint8 with a `targets` list: the minimum avalanche needs to classify samples."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.targets = images, labels.tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.targets[index]


def to_avalanche(data: TensorData):
    from avalanche.benchmarks.utils import as_classification_dataset

    return as_classification_dataset(_ImageArray(data.images, data.labels))


def from_avalanche(dataset) -> TensorData:
    """Read an avalanche experience's dataset back into tensors (once per scenario build)."""
    if len(dataset) == 0:
        return TensorData(torch.zeros(0, 3, glyphs.IMAGE_SIZE, glyphs.IMAGE_SIZE, dtype=torch.uint8),
                          torch.zeros(0, dtype=torch.long))
    items = [dataset[i] for i in range(len(dataset))]
    return TensorData(torch.stack([item[0] for item in items]), torch.tensor([int(item[1]) for item in items]))


# ------------------------------------------------------------------------------------------------ scenario
@dataclass
class Scenario:
    """A built scenario: avalanche's benchmark plus the harness's view of it and what a record must state."""

    name: str
    kind: str
    seed: int
    benchmark: Any  # avalanche CLScenario
    steps: list[TrainStep]
    eval_sets: list[EvalSet]
    class_names: list[str]
    glyph_ids: list[int]  # scenario class index -> glyph class id
    class_order: list[int]  # order in which scenario classes arrive (class-incremental) or base-first order
    domains: list[str] = field(default_factory=list)
    source_domain: str | None = None
    target_domain: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None  # on-disk source: name, root, split notes (None: embedded glyphs)
    preprocess: Preprocess | None = None  # decode geometry of on-disk images, set per cell from the backbone

    def info(self) -> ScenarioInfo:
        return ScenarioInfo(kind=self.kind, num_classes=len(self.class_names), class_names=list(self.class_names),
                            domains=list(self.domains), source_domain=self.source_domain,
                            target_domain=self.target_domain)

    def describe(self) -> dict[str, Any]:
        """The facts a result record stores: enough to reproduce and to read the numbers right."""
        return {"name": self.name, "kind": self.kind, "seed": self.seed, "num_steps": len(self.steps),
                "eval_names": [e.name for e in self.eval_sets], "class_order": self.class_order,
                "classes_per_step": [s.classes for s in self.steps], "class_names": self.class_names,
                "domains": self.domains, "train_sizes": [len(s.data) for s in self.steps],
                "eval_sizes": [len(e.data) for e in self.eval_sets], "spec": self.spec,
                **({"source": self.source} if self.source is not None else {})}


# --------------------------------------------------------------------------------------------------- data
def _glyph_data(glyph_ids: Sequence[int], domain: str, per_font: int, seed: int) -> TensorData:
    """Bench-font glyphs of `glyph_ids` in one style, labelled by position in `glyph_ids` (the glyph source)."""
    from scenarios.sources.embedded import glyph_records

    records = glyph_records(glyph_ids, domain, per_font, seed)
    images = torch.from_numpy(np.ascontiguousarray(records.pixels.transpose(0, 3, 1, 2)))
    return TensorData(images, torch.from_numpy(records.labels).long())


def few_shot(data: TensorData, shots: int | None, seed: int) -> TensorData:
    """Keep `shots` samples per class, chosen by a local generator (None: keep everything)."""
    if shots is None:
        return data
    return data.subset(torch.from_numpy(seeded_few_shot(data.labels.numpy(), shots, seed)))


def _choose_classes(num_classes: int | None) -> list[int]:
    total = len(glyphs.GLYPH_CLASSES)
    if num_classes is None:
        return list(range(total))
    if not 1 <= num_classes <= total:
        raise ValueError(f"num_classes={num_classes} is outside 1..{total}")
    return list(range(num_classes))


def _names(glyph_ids: Sequence[int]) -> list[str]:
    return [glyphs.GLYPH_CLASSES[g].name for g in glyph_ids]


# ---------------------------------------------------------------------------------------------- builders
def class_incremental(name: str, seed: int, num_tasks: int = 5, domain: str = "clean", train_per_font: int = 3,
                      test_per_font: int = 2, shots: int | None = None,
                      num_classes: int | None = None) -> Scenario:
    """Classes arrive in `num_tasks` disjoint groups; the order is a seeded permutation."""
    from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark

    glyph_ids = _choose_classes(num_classes)
    train = few_shot(_glyph_data(glyph_ids, domain, train_per_font, derive_seed(seed, "train")), shots,
                     derive_seed(seed, "shots"))
    test = _glyph_data(glyph_ids, domain, test_per_font, derive_seed(seed, "test"))
    order = class_order(len(glyph_ids), seed, "seeded")
    groups = exact_split(order, num_tasks)
    bench = class_incremental_benchmark({"train": to_avalanche(train), "test": to_avalanche(test)},
                                        class_order=order, num_classes_per_exp=[len(g) for g in groups])
    steps = [TrainStep(from_avalanche(exp.dataset), sorted(exp.classes_in_this_experience), domain)
             for exp in bench.train_stream]
    evals = [EvalSet(f"task{j + 1}", from_avalanche(exp.dataset)) for j, exp in enumerate(bench.test_stream)]
    for step, group in zip(steps, groups):
        assert step.classes == sorted(group), "avalanche split the classes differently from the exact split"
    return Scenario(name, "class_incremental", seed, bench, steps, evals, _names(glyph_ids), glyph_ids, order,
                    domains=[domain])


def domain_incremental(name: str, seed: int, domains: Sequence[str] = ("clean", "outline", "texture", "noisy"),
                       train_per_font: int = 1, test_per_font: int = 1, shots: int | None = None,
                       num_classes: int | None = None) -> Scenario:
    """Every class in every step; the style domain changes from step to step, in the given order."""
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets

    glyph_ids = _choose_classes(num_classes)
    trains = [few_shot(_glyph_data(glyph_ids, d, train_per_font, derive_seed(seed, "train", d)), shots,
                       derive_seed(seed, "shots", d)) for d in domains]
    tests = [_glyph_data(glyph_ids, d, test_per_font, derive_seed(seed, "test", d)) for d in domains]
    bench = benchmark_from_datasets(train=[to_avalanche(t) for t in trains], test=[to_avalanche(t) for t in tests])
    all_classes = list(range(len(glyph_ids)))
    steps = [TrainStep(from_avalanche(exp.dataset), all_classes, d) for exp, d in zip(bench.train_stream, domains)]
    evals = [EvalSet(d, from_avalanche(exp.dataset)) for exp, d in zip(bench.test_stream, domains)]
    return Scenario(name, "domain_incremental", seed, bench, steps, evals, _names(glyph_ids), glyph_ids,
                    all_classes, domains=list(domains))


def base_to_new(name: str, seed: int, domain: str = "clean", shots: int | None = 16, train_per_font: int = 4,
                test_per_font: int = 2, num_classes: int | None = None) -> Scenario:
    """Tune on a seeded half of the classes (base); test on base and on the unseen half (new), each among its own
    classes, as in the CoCoOp base-to-new protocol."""
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets

    glyph_ids = _choose_classes(num_classes)
    base, new = base_new_classes(len(glyph_ids), "seeded", seed)
    train = few_shot(_glyph_data(glyph_ids, domain, train_per_font, derive_seed(seed, "train")), shots,
                     derive_seed(seed, "shots"))
    test = _glyph_data(glyph_ids, domain, test_per_font, derive_seed(seed, "test"))
    pick = lambda data, classes: data.subset(torch.isin(data.labels, torch.tensor(classes)).nonzero().flatten())
    bench = benchmark_from_datasets(train=[to_avalanche(pick(train, base))],
                                    test=[to_avalanche(pick(test, base)), to_avalanche(pick(test, new))])
    base_test, new_test = bench.test_stream
    steps = [TrainStep(from_avalanche(bench.train_stream[0].dataset), base, domain)]
    evals = [EvalSet("base", from_avalanche(base_test.dataset), base),
             EvalSet("new", from_avalanche(new_test.dataset), new)]
    return Scenario(name, "base_to_new", seed, bench, steps, evals, _names(glyph_ids), glyph_ids, base + new,
                    domains=[domain])


def _digits_data(split: str, seed: int) -> TensorData:
    from scenarios.sources.embedded import digit_records

    records = digit_records(split, seed)
    images = torch.from_numpy(np.ascontiguousarray(records.pixels.transpose(0, 3, 1, 2)))
    return TensorData(images, torch.from_numpy(records.labels).long())


def domain_adaptation(name: str, seed: int, source: str = "clean", target: str = "handwritten",
                      train_per_font: int = 3, test_per_font: int = 2, shots: int | None = None,
                      num_classes: int | None = None) -> Scenario:
    """Unsupervised adaptation: labelled source training data, unlabelled target training data, and labelled
    test sets in both domains. Target "handwritten" is scikit-learn's digits (the ten digit classes only)."""
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets

    glyph_ids = DIGIT_CLASSES if target == "handwritten" else _choose_classes(num_classes)
    source_train = few_shot(_glyph_data(glyph_ids, source, train_per_font, derive_seed(seed, "train", source)),
                            shots, derive_seed(seed, "shots"))
    source_test = _glyph_data(glyph_ids, source, test_per_font, derive_seed(seed, "test", source))
    if target == "handwritten":
        target_train, target_test = _digits_data("train", seed), _digits_data("test", seed)
    else:
        target_train = _glyph_data(glyph_ids, target, train_per_font, derive_seed(seed, "train", target))
        target_test = _glyph_data(glyph_ids, target, test_per_font, derive_seed(seed, "test", target))
    # The adaptation protocol never shows target labels to training: the unlabelled stream carries -1.
    unlabelled = TensorData(target_train.images, torch.full_like(target_train.labels, -1))
    bench = benchmark_from_datasets(train=[to_avalanche(source_train)], unlabelled=[to_avalanche(unlabelled)],
                                    test=[to_avalanche(source_test), to_avalanche(target_test)])
    all_classes = list(range(len(glyph_ids)))
    steps = [TrainStep(from_avalanche(bench.train_stream[0].dataset), all_classes, source,
                       unlabelled=from_avalanche(bench.unlabelled_stream[0].dataset))]
    evals = [EvalSet("source", from_avalanche(bench.test_stream[0].dataset)),
             EvalSet("target", from_avalanche(bench.test_stream[1].dataset))]
    return Scenario(name, "domain_adaptation", seed, bench, steps, evals, _names(glyph_ids), list(glyph_ids),
                    all_classes, domains=[source, target], source_domain=source, target_domain=target)


BUILDERS = {"class_incremental": class_incremental, "domain_incremental": domain_incremental,
            "base_to_new": base_to_new, "domain_adaptation": domain_adaptation}
