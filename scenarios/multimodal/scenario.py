"""The multimodal streams as named scenarios of the catalog (scenarios/catalog.py): what a benchmark cell builds.

Two scenario kinds, each a pure function of its parameters and the seed (scenarios/multimodal/streams.py):
- `multimodal_task_incremental`: one experience per task kind (caption -> VQA -> entailment by default);
- `multimodal_domain_incremental`: one task kind, the glyph style shifting from one experience to the next.
A preset of the task-incremental kind with a `dataset` reads OFA's real data sets instead (COCO captions, VQAv2,
SNLI-VE under the data root): scenarios/multimodal/real_streams.py builds it, into the same `MultimodalScenario`.

A cell trains on each experience's train split in turn and, after each, scores every experience's test split with
its kind's official metric (bench/run/seq2seq_cell.py). Validation splits are built for tuning; cells never read
them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios import glyphs
from scenarios.catalog import MULTIMODAL_KINDS
from scenarios.multimodal.streams import Experience, domain_incremental_stream, task_incremental_stream

__all__ = ["MULTIMODAL_BUILDERS", "MULTIMODAL_KINDS", "MultimodalScenario", "multimodal_domain_incremental",
           "multimodal_task_incremental"]


@dataclass
class MultimodalScenario:
    """A built multimodal stream: its experiences in training order."""

    name: str
    kind: str
    seed: int
    experiences: list[Experience]
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_names(self) -> list[str]:
        return [e.name for e in self.experiences]

    @property
    def eval_kinds(self) -> list[str]:
        return [e.kind for e in self.experiences]

    def describe(self) -> dict[str, Any]:
        """The scenario part of a cell's record."""
        return {"name": self.name, "kind": self.kind, "seed": self.seed, "num_steps": len(self.experiences),
                "eval_names": self.eval_names, "task_kinds": self.eval_kinds,
                "domains": [e.domain for e in self.experiences],
                "examples": {e.name: {"train": len(e.train), "val": len(e.val), "test": len(e.test)}
                             for e in self.experiences}}


def multimodal_task_incremental(name: str, seed: int, kinds: Sequence[str] = ("caption", "vqa", "entailment"),
                                domain: str = "clean", n_train: int = 64, n_test: int = 32,
                                per_scene: int = 3) -> MultimodalScenario:
    """One experience per task kind, in order; `n_*` count scenes (a few examples each)."""
    stream = task_incremental_stream(seed, tuple(kinds), domain, n_train, max(1, n_test // 2), n_test, per_scene)
    return MultimodalScenario(name, "multimodal_task_incremental", seed, stream)


def multimodal_domain_incremental(name: str, seed: int, task: str = "vqa",
                                  domains: Sequence[str] = glyphs.DOMAINS, n_train: int = 64, n_test: int = 32,
                                  per_scene: int = 3) -> MultimodalScenario:
    """One task kind; each experience in the next glyph style."""
    stream = domain_incremental_stream(task, seed, tuple(domains), n_train, max(1, n_test // 2), n_test, per_scene)
    return MultimodalScenario(name, "multimodal_domain_incremental", seed, stream)


MULTIMODAL_BUILDERS = dict(zip(MULTIMODAL_KINDS, (multimodal_task_incremental, multimodal_domain_incremental)))
