"""The sequence-to-sequence methods of the multimodal task kinds as strategies a suite can name.

Each method of `bench.multimodal.methods` (fine-tuning, BitFit, deep prompts, input prompts, Adapter, LoRA) is
offered to suites as `seq2seq_<method>`, with a config class built from its constructor's parameters plus the
training and decoding settings every method shares (`SHARED_FIELDS`). The class is a frozen dataclass checked by
`bench.core.validation` like every strategy config, so a wrong or unknown field is a one-line error naming it
before any cell runs, and its `to_dict()` is what the cell id hashes.

They are not `Strategy` classes (the classification harness does not run them) and are kept out of
`bench.core.strategy.STRATEGIES`, whose every entry the contract tests train as a classifier. The suite checks see
them through the catalog (`bench.run.catalog.live_catalog`, and the cached listing for torch-free plans); cells
run through `bench.run.seq2seq_cell`. Importing this module does not import torch; `entries()` does.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bench.core.config_values import plain_config
from bench.core.registry import Registry
from bench.core.validation import validate_config
from scenarios.catalog import MULTIMODAL_KINDS

__all__ = ["BACKBONE_FAMILY", "COCA_FAMILY", "PREFIX", "SCENE_BACKBONE", "SEQ2SEQ_BACKBONES", "SHARED_FIELDS",
           "Seq2SeqEntry", "config_class_of", "entries", "is_seq2seq", "method_of", "seq2seq_family", "with_seq2seq"]

PREFIX = "seq2seq_"
BACKBONE_FAMILY = "scene"  # the sequence-to-sequence CoCa of the scene tasks (its own vocabulary and image size)
SCENE_BACKBONE = "scene_coca"
# open_clip's pretrained CoCa (bench/multimodal/open_clip_coca.py, in its BPE vocabulary) is the registered "coca"
# backbone that `ofa_prompt_coca` classifies with: the seq2seq strategies run on that family too, the scene family
# staying their default, so the classification strategies' families are untouched
COCA_FAMILY = "coca"
# The backbones of each family a seq2seq method can run on, named without importing torch so that a suite naming
# another (a classification-only CoCa such as coca_glyph_tiny) is refused before anything runs.
# bench/multimodal/open_clip_coca.py builds the open_clip ones (a test there keeps the two lists equal).
SEQ2SEQ_BACKBONES: dict[str, tuple[str, ...]] = {BACKBONE_FAMILY: (SCENE_BACKBONE,),
                                                 COCA_FAMILY: ("coca_ViT-B-32.laion2b_s13b_b90k",
                                                               "coca_bpe_test_micro")}
SCENE_BACKBONE_DESCRIPTION = ("CoCa for the multimodal scene tasks (word vocabulary with OFA's location tokens, "
                              "64 px), pretrained on scenes of the pretraining fonts (bench/multimodal/scene_model.py)")
PAPERS = {"finetune": "full fine-tuning (OFA-PT's baseline)", "bitfit": "Ben Zaken et al., BitFit, ACL 2022",
          "deep_prompt": "Yang et al., Prompt Tuning for Unified Multimodal Pretrained Models (OFA-PT), ACL "
                         "Findings 2023", "input_prompt": "Lester et al., prompt tuning at the input, EMNLP 2021",
          "adapter": "Houlsby et al., Adapters, ICML 2019", "lora": "Hu et al., LoRA, ICLR 2022"}

# (name, type, default, help, rules): the loop's and the decoder's settings (bench.multimodal.loop.TrainSettings,
# bench.multimodal.seq2seq.DecodeSettings), the same fields for every method.
SHARED_FIELDS: tuple[tuple[str, type, Any, str, dict[str, Any]], ...] = (
    ("steps", int, 60, "AdamW steps on each task's training split", {"ge": 1}),
    ("batch_size", int, 16, "training batch size (examples)", {"ge": 1}),
    ("lr", float, 1e-3, "AdamW learning rate (no weight decay, constant); default: the method's own "
     "`default_lr`", {}),
    ("beam_size", int, 1, "1: greedy decoding; more: beam search", {"ge": 1, "le": 16}),
    ("max_new_tokens", int, 16, "longest generated answer (tokens)", {"ge": 1}),
    ("length_penalty", float, 0.0, "beam score divided by length ** penalty", {"ge": 0, "le": 5}),
    ("robustness", str, "suite", "with a suite `robustness:` block: suite (all it asks: FGSM, PGD, corruptions) | "
     "attacks (FGSM and PGD only: decoding 75 corrupted copies of every task costs more than the cell) | off",
     {"choices": ("suite", "attacks", "off")}),
)
SHARED_NAMES = tuple(f[0] for f in SHARED_FIELDS)
# When a seq2seq cell attacks a task: right after training it, on that task's own test subset, as every other
# claim on these tasks reads a task (and as OFA-PT attacks models tuned on the task). Part of the cell id of the
# cells that attack, so that records attacked at the end of the stream (the first protocol: a stream that forgot
# its first tasks had a clean metric of 0 there, and those tasks dropped out of "PGD kept") are not served.
ROBUSTNESS_WHEN = "right after training each task"


def seq2seq_attacks(suite_robustness: dict[str, Any] | None, scope: str) -> bool:
    """Whether a seq2seq cell runs the generation attacks: its suite has a `robustness:` block and the strategy's
    `robustness` setting (`scope`) is not "off". The one rule the cell id (`CellConfig.resolved`) and the cell
    (`seq2seq_cell`) both read, so that an id never names attacks a cell does not run."""
    return bool(suite_robustness) and scope != "off"


_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class Seq2SeqEntry:
    """What a suite's checks and expansion read of a strategy (the attributes of a `Strategy` class they use)."""

    name: str
    method: str
    config_cls: type
    paper: str = ""
    family: str = "seq2seq"
    backbone_families: tuple[str, ...] = (BACKBONE_FAMILY, COCA_FAMILY)
    supported_scenarios: tuple[str, ...] = MULTIMODAL_KINDS


def is_seq2seq(name: str) -> bool:
    """Whether `name` is a seq2seq strategy's name (by its prefix; `entries` says whether it exists)."""
    return name.startswith(PREFIX)


def seq2seq_family(backbone: str) -> str | None:
    """The family `backbone` is a seq2seq backbone of (`SEQ2SEQ_BACKBONES`); None: no seq2seq method runs on it."""
    return next((family for family, names in SEQ2SEQ_BACKBONES.items() if backbone in names), None)


def trained_in_steps(name: str) -> bool:
    """Whether `name` is a seq2seq method's strategy, trained by bench.multimodal.loop in AdamW steps: the prefix,
    and no classifier strategy registered under that name (imports the registry, hence torch)."""
    from bench.core.strategy import STRATEGIES

    return is_seq2seq(name) and name not in STRATEGIES


def method_of(name: str) -> str:
    return name[len(PREFIX):]


def _config_class(method: str, params: dict[str, Any], lr: float | None = None) -> type:
    """A frozen config dataclass of the shared settings and the method's own parameters (typed by their defaults);
    `lr`: the method's own default rate (else the shared one)."""
    clash = sorted(set(params) & set(SHARED_NAMES))
    if clash:
        raise TypeError(f"seq2seq method {method!r}: parameter(s) {clash} clash with the shared settings")
    specs = [(name, kind, dataclasses.field(default=lr if name == "lr" and lr is not None else default,
                                            metadata={"help": text, **rules}))
             for name, kind, default, text, rules in SHARED_FIELDS]
    for name, default in params.items():
        kind = type(default)
        if kind not in _TYPES:  # a method whose parameter has no plain default cannot be set from a suite
            raise TypeError(f"seq2seq method {method!r}: parameter {name!r} defaults to {default!r}, not a plain "
                            f"bool, int, float or str")
        specs.append((name, kind, dataclasses.field(default=default, metadata={"help": f"{method} parameter"})))
    title = "".join(part.title() for part in method.split("_"))
    return dataclasses.make_dataclass(f"Seq2Seq{title}Config", specs, frozen=True, namespace={
        "to_dict": plain_config, "from_dict": classmethod(validate_config),
        "help": classmethod(lambda cls: {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)})})


@lru_cache(maxsize=1)
def entries() -> dict[str, Seq2SeqEntry]:
    """Every registered seq2seq method as a strategy entry (imports the methods, hence torch)."""
    from bench.multimodal.methods import method_default_lr, method_names, method_parameters

    return {PREFIX + m: Seq2SeqEntry(PREFIX + m, m, _config_class(m, method_parameters(m), method_default_lr(m)),
                                     PAPERS.get(m, ""))
            for m in method_names()}


def config_class_of(name: str) -> type:
    """The config class of seq2seq strategy `name`; the registry's unknown-name error otherwise."""
    found = entries()
    if name not in found:
        registry: Registry[Seq2SeqEntry] = Registry("seq2seq strategy")
        for key, entry in found.items():
            registry.add(key, entry)
        registry.get(name)  # raises, naming the valid ones
    return found[name].config_cls


def settings_and_params(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A resolved config split into the shared settings and the method's own parameters."""
    return ({k: v for k, v in config.items() if k in SHARED_NAMES},
            {k: v for k, v in config.items() if k not in SHARED_NAMES})


def with_seq2seq(strategies: Registry, backbones: Registry, backbone_entry: Any) -> tuple[Registry, Registry]:
    """Copies of the strategy and backbone registries with the seq2seq strategies and the scene backbone added
    (`backbone_entry`: what the registry holds for it, e.g. a `ListedBackbone`)."""
    merged_strategies: Registry = Registry(strategies.kind)
    for name in strategies.names():
        merged_strategies.add(name, strategies.get(name))
    for name, entry in entries().items():
        if name not in merged_strategies:
            merged_strategies.add(name, entry)
    merged_backbones: Registry = Registry(backbones.kind)
    for name in backbones.names():
        merged_backbones.add(name, backbones.get(name))
    if SCENE_BACKBONE not in merged_backbones:
        merged_backbones.add(SCENE_BACKBONE, backbone_entry)
    return merged_strategies, merged_backbones


def listing_entries() -> dict[str, dict[str, Any]]:
    """The seq2seq strategies as `bench.run.listing` lists strategies (same keys)."""
    from bench.run.catalog import config_fields

    return {name: {"family": e.family, "paper": e.paper, "backbones": list(e.backbone_families),
                   "scenarios": list(e.supported_scenarios), "flags": "—", "config": e.config_cls().to_dict(),
                   "help": e.config_cls.help(), "config_class": e.config_cls.__name__,
                   "fields": config_fields(e.config_cls),
                   "doc": f"seq2seq method {e.method!r} on the multimodal task kinds (bench.multimodal.methods)"}
            for name, e in entries().items()}
