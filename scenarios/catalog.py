"""The named scenarios a suite can ask for: one registry entry per (builder, parameters)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bench.core.registry import Registry
from scenarios.protocols.rules import CLASS_ORDERS


@dataclass(frozen=True)
class ScenarioPreset:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def source(self) -> str | None:
        """The on-disk data source this preset reads (None: embedded data, no root needed)."""
        return self.params.get("dataset")


SCENARIOS: Registry[ScenarioPreset] = Registry("scenario")
# The kinds of scenarios/multimodal/scenario.py (a string copy: this module must not import numpy to name them).
MULTIMODAL_KINDS = ("multimodal_task_incremental", "multimodal_domain_incremental")


def _add(name: str, kind: str, description: str, **params: Any) -> None:
    SCENARIOS.add(name, ScenarioPreset(kind, params, description))


_add("ci5_glyphs", "class_incremental", "all glyph classes in 5 tasks, clean print, seeded class order",
     num_tasks=5)
_add("ci10_glyphs", "class_incremental", "all glyph classes in 10 tasks, clean print", num_tasks=10)
_add("ci5_glyphs_5shot", "class_incremental", "5 tasks, 5 training images per class", num_tasks=5, shots=5)
# One task with few images per class: the single-task transfer setting of VPT's comparison across training-set sizes
# (Jia et al., ECCV 2022: FGVC with 10% of the training images is its low-data end, about 1 to 9 images per class,
# median about 4), which the streams cannot show. The shots are drawn per seed; the test split is the full one.
_add("glyphs_4shot", "class_incremental", "one task: all 67 classes at once, 4 training images per class",
     num_tasks=1, shots=4)
_add("di_styles", "domain_incremental", "all classes; style shifts clean -> outline -> texture -> noisy",
     domains=("clean", "outline", "texture", "noisy"))
_add("b2n_glyphs", "base_to_new", "tune on half the classes (16 shots), test on base and on new", shots=16)
# Zero-shot CLIP is near the ceiling on clean b2n_glyphs (~98%), so prompt learning cannot show there; drawn in
# outline the same classes leave zero-shot well below it (measured, clip_glyph_tiny: base/new 75.5/73.5 on seed 0,
# 79.4/80.1 on seed 1).
_add("b2n_outline", "base_to_new", "b2n_glyphs drawn in outline: zero-shot CLIP well below the ceiling (~77%)",
     domain="outline", shots=16)
_add("uda_digits", "domain_adaptation", "glyph digits (labelled) -> handwritten digits (unlabelled)",
     source="clean", target="handwritten")
_add("uda_styles", "domain_adaptation", "clean print (labelled) -> coloured texture (unlabelled)",
     source="clean", target="texture")
# Multimodal generation and understanding on rendered glyph scenes (scenarios/multimodal/), scored with each task
# kind's official metric by the seq2seq strategies (bench/run/seq2seq_cell.py).
_add("mm_tasks", "multimodal_task_incremental", "scene tasks in turn: captioning -> VQA -> visual entailment",
     kinds=("caption", "vqa", "entailment"))
_add("mm_tasks_grounding", "multimodal_task_incremental", "captioning -> VQA -> entailment -> referring "
     "expressions (boxes as OFA's location tokens, accuracy at IoU >= 0.5)",
     kinds=("caption", "vqa", "entailment", "grounding"))
_add("mm_vqa_styles", "multimodal_domain_incremental", "scene VQA; style shifts clean -> outline -> texture -> "
     "noisy", task="vqa", domains=("clean", "outline", "texture", "noisy"))
_add("mm_caption_styles", "multimodal_domain_incremental", "scene captioning; style shifts clean -> outline -> "
     "texture -> noisy", task="caption", domains=("clean", "outline", "texture", "noisy"))
_add("mm_grounding_styles", "multimodal_domain_incremental", "scene referring expressions (boxes as location "
     "tokens, accuracy at IoU >= 0.5); style shifts clean -> outline -> texture -> noisy", task="grounding",
     domains=("clean", "outline", "texture", "noisy"))


# ------------------------------------------------------------------ real benchmarks (need a data root)
# Class orders: "seeded" is a permutation drawn from the run seed (one order per seed, recorded in every result);
# "pycil" is PyCIL / PILOT's fixed order (np.random.seed(1993) permutation), the same for every seed.
_add("split_cifar100_10t", "class_incremental", "Split CIFAR-100, 10 tasks x 10 classes; seeded class order",
     dataset="cifar100", num_tasks=10, order="seeded")
_add("split_cifar100_10t_pycil", "class_incremental", "Split CIFAR-100, 10 x 10; PyCIL/PILOT order (seed 1993)",
     dataset="cifar100", num_tasks=10, order="pycil")
_add("imagenet_r_10t", "class_incremental", "ImageNet-R 80/20, 10 tasks x 20 classes; seeded class order",
     dataset="imagenet_r", num_tasks=10, order="seeded")
_add("imagenet_r_10t_pycil", "class_incremental", "ImageNet-R, 10 x 20; PyCIL/PILOT order (seed 1993)",
     dataset="imagenet_r", num_tasks=10, order="pycil")
_add("cub200_10t", "class_incremental", "CUB-200-2011 official split, 10 tasks x 20 classes; seeded order",
     dataset="cub200", num_tasks=10, order="seeded")
_add("domainnet_di", "domain_incremental", "DomainNet 345 classes; clipart->infograph->painting->quickdraw->"
     "real->sketch", dataset="domainnet",
     domains=("clipart", "infograph", "painting", "quickdraw", "real", "sketch"))
_OFFICE_HOME = ("art", "clipart", "product", "real_world")
for _s in _OFFICE_HOME:
    for _t in _OFFICE_HOME:
        if _s != _t:
            _add(f"office_home_{_s}_{_t}", "domain_adaptation", f"Office-Home {_s} (labelled) -> {_t} "
                 f"(unlabelled), all images, as DAPL", dataset="office_home", source_domain=_s, target_domain=_t)
_DOMAINNET = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
for _s in _DOMAINNET:
    for _t in _DOMAINNET:
        if _s != _t:
            _add(f"domainnet_{_s}_{_t}", "domain_adaptation", f"DomainNet {_s} (labelled) -> {_t} (unlabelled); "
                 f"official train lists, evaluated on the test lists", dataset="domainnet", source_domain=_s,
                 target_domain=_t)
COOP_B2N = ("imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
            "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101")
for _d in COOP_B2N:
    _add(f"coop_{_d}_b2n", "base_to_new", f"CoOp {_d}: base-to-new, 16 shots (CoOp's draw), sorted labels' first "
         f"half base", dataset=f"coop_{_d}", shots=16)
# OFA-PT's generation and understanding tasks on their real data sets (scenarios/multimodal/real_streams.py: layout,
# official splits, per-seed subsampling): the real counterpart of mm_tasks, for bench/suites/multimodal_paper.yaml.
_add("mm_real_tasks", "multimodal_task_incremental", "COCO captions (Karpathy) -> VQAv2 -> SNLI-VE, official splits "
     "subsampled per seed, images resized to the backbone's square input", dataset="ofa_tasks",
     kinds=("caption", "vqa", "entailment"))
_add("image_folder_ci5", "class_incremental", "your own ROOT/<class>/*.jpg in 5 tasks; seeded class order",
     dataset="image_folder", num_tasks=5, order="seeded")


def build_scenario(name: str, seed: int, *, fingerprint: str | None = None, **overrides: Any):
    """Build a named scenario for one seed; `overrides` replace preset parameters (e.g. shots=4). On-disk presets
    read their source under the data root (`PROMPTSHIFT_DATA`, which `--data-root` sets); with the cell's data
    `fingerprint` (scenarios/identity.py) from the listing cached under it, without walking the folders."""
    from scenarios.sources import data_root

    preset = SCENARIOS.get(name)
    root = data_root() if preset.source else None
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}  # a YAML list: hashable
    return _build_cached(name, seed, tuple(sorted({**preset.params, **overrides}.items())),
                         str(root) if root else None, fingerprint if preset.source else None)


@lru_cache(maxsize=8)
def _build_cached(name: str, seed: int, params: tuple, root: str | None = None, fingerprint: str | None = None):
    from scenarios.streams import BUILDERS

    preset = SCENARIOS.get(name)
    if preset.source and preset.kind in MULTIMODAL_KINDS:  # read whole, drawn per seed: no listing to reuse
        from scenarios.multimodal.real_streams import MULTIMODAL_SOURCE_BUILDERS

        scenario = MULTIMODAL_SOURCE_BUILDERS[preset.kind](name, seed, data_root=root, **dict(params))
    elif preset.source:
        from scenarios.source_streams import SOURCE_BUILDERS

        scenario = SOURCE_BUILDERS[preset.kind](name, seed, data_root=root, fingerprint=fingerprint,
                                                **dict(params))
    elif preset.kind in MULTIMODAL_KINDS:
        from scenarios.multimodal.scenario import MULTIMODAL_BUILDERS

        scenario = MULTIMODAL_BUILDERS[preset.kind](name, seed, **dict(params))
    else:
        scenario = BUILDERS[preset.kind](name, seed, **dict(params))
    scenario.spec = {"preset": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in params}}
    return scenario


def accepted_overrides(name: str) -> list[str]:
    """The builder parameters a suite may override for scenario `name` (imports the builders, hence torch)."""
    import inspect

    from scenarios.streams import BUILDERS

    preset = SCENARIOS.get(name)
    if preset.source and preset.kind in MULTIMODAL_KINDS:
        from scenarios.multimodal.real_streams import MULTIMODAL_SOURCE_BUILDERS

        builder = MULTIMODAL_SOURCE_BUILDERS[preset.kind]
    elif preset.source:  # a real-data preset is built by its source builder, whose parameters differ from the glyphs'
        from scenarios.source_streams import SOURCE_BUILDERS

        builder = SOURCE_BUILDERS[preset.kind]
    elif preset.kind in MULTIMODAL_KINDS:
        from scenarios.multimodal.scenario import MULTIMODAL_BUILDERS

        builder = MULTIMODAL_BUILDERS[preset.kind]
    else:
        builder = BUILDERS[preset.kind]
    # the data set, root and fingerprint come from the preset and the run, not from an override
    return [p for p in inspect.signature(builder).parameters
            if p not in ("name", "seed", "dataset", "data_root", "fingerprint")]


def override_problems(name: str, overrides: dict[str, Any], accepted: list[str] | None = None) -> list[str]:
    """"key: message" for every scenario override the builder of `name` does not take (checked before anything is
    built, so a misspelt key fails up front instead of inside the first cell). `accepted`: the builder's parameters
    when known without importing it (the cached listing, `bench.run.catalog`)."""
    if not isinstance(overrides, dict):
        return [f"expected a mapping of parameter: value, got {type(overrides).__name__}"]
    if accepted is None:
        accepted = accepted_overrides(name)
    problems = []
    for key in overrides:
        if key not in accepted:
            import difflib

            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{key}: not a parameter of {name!r}{hint}; valid: {', '.join(accepted)}")
    if "order" in overrides and "order" in accepted and overrides["order"] not in CLASS_ORDERS:
        problems.append(f"order: {overrides['order']!r} is not a class order; valid: {', '.join(CLASS_ORDERS)}")
    return problems
