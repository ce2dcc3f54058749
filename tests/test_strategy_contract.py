"""The strategy contract over the whole registry on tiny CPU models.

First the one contract, `bench.contract.check` (exactly what `check-plugin` runs on a plugin), for every registered
strategy: built-ins meet what plugins must meet. Its only per-strategy input is `CHECK_SETTINGS`, the `--set` a
plugin author would pass. Then checks that need knowledge of each built-in (its trainable-parameter formula) or a
longer run than `check-plugin` should cost (caching across a second scenario kind, augmented cached views).

A new strategy is covered by adding rows to the tables below, never an `if`: `CHECK_SETTINGS`, `OVERRIDES` (a small
config so the extra tests stay fast), `FORMULAS` (its trainable parameter count from config, backbone and
scenario), and where needed `KIND` (the scenario kind its single-scenario checks use).
"""
from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import torch

import strategies  # noqa: F401  (registers every strategy)
from bench.contract.check import CHECK_NAMES, CheckResult, check_strategy
from bench.contract.tiny import TEST_BACKBONES, tiny_scenario
from bench.core.data import EvalSet, TensorData, TrainStep
from bench.core.strategy import STRATEGIES, Strategy, build_strategy
from bench.models.backbones import count_parameters, create_backbone
from bench.run.runner import merged_step
from bench.train.harness import run_stream
from strategies._clip_deep import scaled_depth
from strategies._vit_prompting import scale_layers

CPU = torch.device("cpu")
NAMES = STRATEGIES.names()

# ---------------------------------------------------------------------------------------------- quirk tables
OVERRIDES: dict[str, dict[str, Any]] = {
    "coop": {"n_ctx": 4},
    "dapl": {"n_ctx": 4, "n_dmx": 2},
    "vpt_shallow": {"length": 4},
    "vpt_deep": {"length": 4},
    "ofa_prompt": {"length": 4},
    "ofa_prompt_coca": {"length": 2},
    "l2p": {"pool_size": 4, "length": 2, "top_k": 2},
    "l2p_cifar": {"pool_size": 4, "length": 2, "top_k": 2},
    "l2p_batchvote": {"pool_size": 4, "length": 2, "top_k": 2},
    "replay": {"memory_size": 16},
    "mlp_k": {"layers": 2},
    "partial_k": {"k": 1},
    "lora": {"rank": 2, "targets": "qkv+mlp"},
    "dualprompt": {"g_length": 2, "e_length": 3, "pool_size": 2},
    "coda_prompt": {"components_per_task": 2, "max_tasks": 2, "length": 2},
}
# The official presets train on random-resized crops: these runs count frozen passes of the plain images
# (test_trains_with_augmentation_and_k_cached_views turns augmentation on by itself).
for _preset in ("dualprompt_cifar", "dualprompt_imr", "dualprompt_batchvote"):
    OVERRIDES[_preset] = {**OVERRIDES["dualprompt"], "augment": "none"}
for _preset in ("coda_prompt_cifar", "coda_prompt_imr"):
    OVERRIDES[_preset] = {**OVERRIDES["coda_prompt"], "augment": "none"}
OVERRIDES["l2p_cifar"] = {**OVERRIDES["l2p_cifar"], "augment": "none"}
OVERRIDES["l2p_cifar_perimage"] = {**OVERRIDES["l2p_cifar"], "augment": "none"}
KIND: dict[str, str] = {"dapl": "domain_adaptation"}  # scenario kind for the single-scenario checks
PREFERRED_KINDS = ("class_incremental", "domain_incremental", "domain_adaptation", "base_to_new")


def head(bb: Any, info: Any, width: int | None = None) -> int:
    return ((width or bb.num_features) + 1) * info.num_classes


def lora_count(cfg: Any, bb: Any) -> int:
    """r * (fan_in + fan_out) per adapted projection; each timm block has qkv (d -> 3d), fc1 (d -> h), fc2 (h -> d)."""
    d, hidden = bb.embed_dim, bb.blocks[0].mlp.fc1.out_features
    per_block = d + 3 * d + (2 * (d + hidden) if "mlp" in cfg.targets else 0)
    return bb.num_blocks * cfg.rank * per_block


def side_count(cfg: Any, bb: Any) -> int:
    chans, f = [3, cfg.width, 2 * cfg.width, 4 * cfg.width], bb.num_features
    convs = sum(a * 9 * b + b for a, b in zip(chans[:-1], chans[1:]))
    return convs + (chans[-1] + 1) * f + 1  # three 3x3 convs, the projection, alpha


def mlp_count(cfg: Any, bb: Any, info: Any) -> int:
    w, f = cfg.hidden or bb.num_features, bb.num_features
    dims = [f] + [w] * (cfg.layers - 1) + [info.num_classes]
    return sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))


def coca_prefix_count(cfg: Any, coca: Any) -> int:
    """length * 2 * width per prompted layer, in each chosen stack (encoder and decoder widths differ)."""
    stacks = {"encoder": (coca.visual.num_blocks, coca.visual.embed_dim),
              "decoder": (len(coca.decoder_blocks), coca.decoder_width)}
    return sum(cfg.length * 2 * width * (cfg.depth or layers) for stack, (layers, width) in stacks.items()
               if cfg.where in (stack, "both"))


def cocoop_count(cfg: Any, clip: Any) -> int:
    d, w = clip.embed_dim, clip.text.width
    h = max(1, d // cfg.reduction)
    return cfg.n_ctx * w + (d + 1) * h + (h + 1) * w


def maple_count(cfg: Any, clip: Any) -> int:
    """Text context and deep text prompts (J x n_ctx x w_text), J coupling maps w_text -> w_vision."""
    j, w, v = scaled_depth(cfg.prompt_depth, clip), clip.text.width, clip.visual.embed_dim
    return j * cfg.n_ctx * w + j * (w * v + v)


def text_prefix_count(cfg: Any, clip: Any) -> int:
    """Per-layer keys and values (layers x length x 2w), or an embedding (length x w) and the MLP w -> h -> that."""
    layers, w = len(clip.text.transformer.resblocks), clip.text.width
    if not cfg.reparam:
        return layers * cfg.length * 2 * w
    h = cfg.reparam_hidden or w
    return cfg.length * w + (w + 1) * h + (h + 1) * layers * 2 * w


def p_tuning_count(cfg: Any, clip: Any) -> int:
    """Embedding (a + b) x w, a 2-layer bidirectional LSTM with w/2 hidden units per direction (each layer's input
    is w wide), and the MLP w -> w -> w."""
    w, h = clip.text.width, clip.text.width // 2
    lstm = 2 * 2 * (4 * h * (w + h) + 2 * 4 * h)  # layers x directions x (W_ih, W_hh, b_ih, b_hh)
    return sum(cfg.prompt_tokens) * w + lstm + 2 * (w * w + w)


# name -> (config, backbone handed to the strategy (before it is built), scenario info) -> trainable count
FORMULAS: dict[str, Callable[[Any, Any, Any], int]] = {
    "linear_probe": lambda cfg, bb, info: head(bb, info),
    "full_finetune": lambda cfg, bb, info: count_parameters(bb) + head(bb, info),
    "naive": lambda cfg, bb, info: count_parameters(bb) + head(bb, info),
    "ewc": lambda cfg, bb, info: count_parameters(bb) + head(bb, info),
    "lwf": lambda cfg, bb, info: count_parameters(bb) + head(bb, info),
    "replay": lambda cfg, bb, info: count_parameters(bb) + head(bb, info),
    "joint": lambda cfg, bb, info: count_parameters(bb) + head(bb, info),
    "partial_k": lambda cfg, bb, info: (sum(count_parameters(b) for b in list(bb.blocks)[-cfg.k:])
                                        + count_parameters(bb.final_norm()) + head(bb, info)),
    "mlp_k": lambda cfg, bb, info: mlp_count(cfg, bb, info),
    "side_tune": lambda cfg, bb, info: side_count(cfg, bb) + head(bb, info),
    # by parameter name here, structurally in the strategy: the two must agree
    "bitfit": lambda cfg, bb, info: (sum(p.numel() for n, p in bb.named_parameters() if n.endswith("bias"))
                                     + head(bb, info)),
    "adapter": lambda cfg, bb, info: (bb.num_blocks * {"houlsby": 2, "pfeiffer": 1}[cfg.placement]
                                      * (2 * bb.embed_dim * max(1, bb.embed_dim // cfg.reduction)
                                         + max(1, bb.embed_dim // cfg.reduction) + bb.embed_dim)
                                      + head(bb, info)),
    "lora": lambda cfg, bb, info: lora_count(cfg, bb) + head(bb, info),
    "vpt_shallow": lambda cfg, bb, info: cfg.length * bb.embed_dim + head(bb, info),
    "vpt_deep": lambda cfg, bb, info: bb.num_blocks * cfg.length * bb.embed_dim + head(bb, info),
    "l2p": lambda cfg, bb, info: (cfg.pool_size * (cfg.length * bb.embed_dim + bb.num_features)
                                  + head(bb, info, bb.embed_dim)),
    "ofa_prompt": lambda cfg, bb, info: (cfg.length * 2 * bb.embed_dim * (len(cfg.layers) or cfg.depth
                                                                          or bb.num_blocks) + head(bb, info)),
    "ofa_prompt_coca": lambda cfg, coca, info: coca_prefix_count(cfg, coca),
    "coop": lambda cfg, clip, info: cfg.n_ctx * clip.text.width * (info.num_classes if cfg.class_specific else 1),
    "cocoop": lambda cfg, clip, info: cocoop_count(cfg, clip),
    "dapl": lambda cfg, clip, info: (cfg.n_ctx * clip.text.width * (info.num_classes if cfg.class_specific else 1)
                                     + cfg.n_dmx * clip.text.width * len(info.domains)),
    "zeroshot_clip": lambda cfg, clip, info: 0,
    "dualprompt": lambda cfg, bb, info: (
        2 * bb.embed_dim * (len(scale_layers(cfg.g_layers, bb.num_blocks)) * cfg.g_length
                            + cfg.pool_size * len(scale_layers(cfg.e_layers, bb.num_blocks)) * cfg.e_length)
        + cfg.pool_size * bb.num_features + head(bb, info, bb.embed_dim)),
    "coda_prompt": lambda cfg, bb, info: (
        cfg.max_tasks * cfg.components_per_task * len(scale_layers(cfg.layers, bb.num_blocks))
        * (2 * bb.num_features + cfg.length * bb.embed_dim) + head(bb, info, bb.embed_dim)),
    "aper": lambda cfg, bb, info: (bb.num_blocks * (2 * bb.embed_dim * max(1, bb.embed_dim // cfg.reduction)
                                                    + max(1, bb.embed_dim // cfg.reduction) + bb.embed_dim)
                                   + bb.num_features * info.num_classes + 1),  # AdaptFormer; cosine head + sigma
    "aper_bottleneck": lambda cfg, bb, info: (bb.num_blocks * {"houlsby": 2, "pfeiffer": 1}[cfg.placement]
                                   * (2 * bb.embed_dim * max(1, bb.embed_dim // cfg.reduction)
                                      + max(1, bb.embed_dim // cfg.reduction) + bb.embed_dim) + head(bb, info)),
    "kgcoop": lambda cfg, clip, info: cfg.n_ctx * clip.text.width * (info.num_classes if cfg.class_specific else 1),
    "maple": lambda cfg, clip, info: maple_count(cfg, clip),
    "prompt_tuning": lambda cfg, clip, info: cfg.length * clip.text.width,
    "prefix_tuning": lambda cfg, clip, info: text_prefix_count(cfg, clip),
    "p_tuning_v2": lambda cfg, clip, info: text_prefix_count(cfg, clip),
    "p_tuning": lambda cfg, clip, info: p_tuning_count(cfg, clip),
    "promptsrc": lambda cfg, clip, info: (scaled_depth(cfg.prompt_depth, clip) * (
        cfg.n_ctx_text * clip.text.width + cfg.n_ctx_vision * clip.visual.embed_dim)),
    "simplecil": lambda cfg, bb, info: 0,
    "ranpac": lambda cfg, bb, info: 0,
}
FORMULAS["l2p_cifar"] = FORMULAS["l2p_batchvote"] = FORMULAS["l2p_cifar_perimage"] = FORMULAS["l2p"]
FORMULAS["coda_prompt_cifar"] = FORMULAS["coda_prompt_imr"] = FORMULAS["coda_prompt"]
FORMULAS["dualprompt_cifar"] = FORMULAS["dualprompt_imr"] = FORMULAS["dualprompt_batchvote"] = FORMULAS["dualprompt"]


# ------------------------------------------------------------------------------------------ the one contract
# The config a plugin author would pass to `check-plugin` with --set, where a default does not fit the random micro
# backbones or learn the check's tinted task in its budget (measured with the check itself, learns: accuracy /
# chance). Settings only: a strategy that needs a different check is a wrong check, to be fixed in check.py.
CHECK_SETTINGS: dict[str, dict[str, Any]] = {
    # One SGD step on shared biases / adapters swamps a random micro ViT's tiny residual stream and the features
    # stop depending on the image (25% = chance); Adam's bounded steps avoid that (adapter 50%/40%, bitfit 75%/50%).
    "adapter": {"optimizer": "adam", "lr": 0.003},
    "bitfit": {"optimizer": "adam", "lr": 0.003, "epochs": 10},
    "coop": {"n_ctx": 4, "optimizer": "adam", "lr": 0.01},  # SGD at lr 0.02 or 0.1: 25%; this: 56%
    "cocoop": {"epochs": 10},  # 5 epochs: 2%; 10: 48%
    "dapl": {"n_ctx": 4, "n_dmx": 2},  # 16 + 16 context tokens do not fit the micro text encoder's 32 positions
    # Most of a random micro CoCa's caption loss is template tokens every class shares (lr 0.1, 10 epochs: 25%).
    "ofa_prompt_coca": {"lr": 0.3, "epochs": 10, "init_std": 0.5, "length": 4},
    "coda_prompt": {"lr": 0.01},  # the official 0.001 over 40 steps: 47% on a colour task; 0.01 fits it
    "coda_prompt_cifar": {"lr": 0.01},
    "coda_prompt_imr": {"lr": 0.01, "epochs": 20},
    # The papers' settings are for thousands of steps (prompt tuning with SGD at 0.3: 27%, prefix tuning at 5e-5: 25%).
    "prompt_tuning": {"optimizer": "adam", "lr": 0.01},
    "prefix_tuning": {"lr": 0.003},
    # The regularisers pull toward a random CLIP's zero-shot, i.e. chance (25%); the prompts alone fit the task, which
    # is what this check is about. tests/test_promptsrc.py covers the regularisers.
    "promptsrc": {"text_weight": 0.0, "image_weight": 0.0, "logits_weight": 0.0},
    # As coop runs it, and a weaker pull toward the hand-written prompt, which scores at chance on a random CLIP.
    "kgcoop": {"lr": 0.02, "kg_weight": 0.5, "ctx_init": "", "epochs": 10},
    "maple": {"optimizer": "adam", "lr": 0.01},  # official SGD 0.0035 over 5 epochs of 4-image batches: 25%; this 50%
}
# (strategy, check) pairs known to fail on the micro backbones; xfail, not strict, so a fix shows up as XPASS.
KNOWN_FAILURES: dict[tuple[str, str], str] = {
    ("l2p_batchvote", "learns"): "on vit_test_micro one vote picks a prompt set that predicts one class for the "
                                 "whole batch (25%, any lr or optimizer tried); on clip_test_micro it learns",
}


@functools.lru_cache(maxsize=None)
def contract(name: str) -> tuple[CheckResult, ...]:
    """Every check of `check-plugin` for one strategy (run once; the parametrized test reads it per check)."""
    return tuple(check_strategy(name, CHECK_SETTINGS.get(name)))


@pytest.mark.parametrize("check", CHECK_NAMES)
@pytest.mark.parametrize("name", NAMES)
def test_meets_the_plugin_contract(name: str, check: str, request: pytest.FixtureRequest) -> None:
    if (name, check) in KNOWN_FAILURES:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_FAILURES[name, check], strict=False))
    results = contract(name)
    mine = [r for r in results if r.check == check]
    assert mine, "\n".join(r.line() for r in results if not r.passed) or f"check {check!r} never ran"
    failed = [r.line() for r in mine if not r.passed]
    assert not failed, "\n".join(failed)


# ------------------------------------------------------------------------------------------------- helpers
def kind_for(cls: type[Strategy]) -> str:
    return KIND.get(cls.name) or next(k for k in PREFERRED_KINDS if k in cls.supported_scenarios)


def backbone_for(cls: type[Strategy]) -> torch.nn.Module:
    backbone = create_backbone(TEST_BACKBONES[cls.backbone_families[0]])
    return backbone if cls.needs_text or not hasattr(backbone, "visual") else backbone.visual


def build(name: str, info: Any, **extra: Any) -> Strategy:
    torch.manual_seed(0)
    return build_strategy(name, backbone_for(STRATEGIES.get(name)), info, {**OVERRIDES.get(name, {}), **extra})


def overrides_frozen_inputs(strategy: Strategy) -> bool:
    return type(strategy).frozen_inputs is not Strategy.frozen_inputs


def steps_for(strategy: Strategy, scenario: Any) -> list[TrainStep]:
    return [merged_step(scenario.steps)] if strategy.flags.joint_training else list(scenario.steps)


def head_of(data: TensorData, n: int) -> TensorData:
    """The first n images of each class (keeps every class of the step, a fraction of the compute)."""
    keep = torch.cat([torch.nonzero(data.labels == c).flatten()[:n] for c in data.labels.unique()])
    return data.subset(keep.sort().values)


@functools.lru_cache(maxsize=None)
def small_scenario(kind: str) -> SimpleNamespace:
    """The tiny scenario of `kind` with 2 training and 1 test image per class and step."""
    full = tiny_scenario(kind)
    steps = [TrainStep(head_of(s.data, 2), s.classes, s.domain,
                       s.unlabelled.subset(torch.arange(min(8, len(s.unlabelled)))) if s.unlabelled else None)
             for s in full.steps]
    evals = [EvalSet(e.name, head_of(e.data, 1), e.label_space) for e in full.eval_sets]
    return SimpleNamespace(steps=steps, eval_sets=evals, info=full.info)


@functools.lru_cache(maxsize=None)
def stream_run(name: str, kind: str) -> dict[str, Any]:
    """A 2-epoch run through the small scenario of `kind`; parameters before it, frozen_inputs batch sizes during
    it. Cached: the freezing, stream and caching checks all read the same run."""
    scenario = small_scenario(kind)
    strategy = build(name, scenario.info(), epochs=2, batch_size=8)
    before = {id(p): p.detach().clone() for p in strategy.parameters()}
    calls: list[int] = []
    if overrides_frozen_inputs(strategy):
        original = strategy.frozen_inputs

        def counting(x: torch.Tensor) -> torch.Tensor | None:
            out = original(x)
            if out is not None:  # None: nothing to cache in this configuration (the harness then stops asking)
                calls.append(int(x.shape[0]))
            return out

        strategy.frozen_inputs = counting  # instance attribute: the harness calls through it
    steps = steps_for(strategy, scenario)
    result = run_stream(strategy, steps, scenario.eval_sets, CPU, seed=0, show_progress=False)
    distinct = (sum(len(s.data) for s in steps) + sum(len(s.unlabelled) for s in steps if s.unlabelled is not None)
                + sum(len(e.data) for e in scenario.eval_sets))
    return dict(strategy=strategy, before=before, result=result, calls=calls, steps=steps, scenario=scenario,
                distinct=distinct)


def formula_for(name: str) -> Callable[[Any, Any, Any], int]:
    if name not in FORMULAS:
        pytest.skip(f"add a formula row for {name}")
    return FORMULAS[name]


# --------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", NAMES)
def test_trainable_count_matches_formula(name: str) -> None:
    formula = formula_for(name)
    cls = STRATEGIES.get(name)
    info = tiny_scenario(kind_for(cls)).info()
    cfg = cls.config_cls.from_dict(OVERRIDES.get(name, {}))
    backbone = backbone_for(cls)
    expected = formula(cfg, backbone, info)  # before building: adapters and LoRA modify the backbone in place
    strategy = build_strategy(name, backbone, info, OVERRIDES.get(name, {}))
    declared = {id(p): p.numel() for _, p in strategy.trainable_parameters()}
    assert sum(declared.values()) == expected


def evaluated(matrix: list[list[float | None]]) -> torch.Tensor:
    """The evaluated entries of an accuracy matrix (None: a set not learnable yet, left unscored)."""
    return torch.tensor([value for row in matrix for value in row if value is not None])


@pytest.mark.parametrize("kind", ["class_incremental", "domain_incremental"])
@pytest.mark.parametrize("name", NAMES)
def test_runs_through_a_two_step_stream(name: str, kind: str) -> None:
    if kind not in STRATEGIES.get(name).supported_scenarios:
        pytest.skip(f"{name} does not support {kind}")
    run = stream_run(name, kind)
    matrix = run["result"].acc_matrix
    assert [len(row) for row in matrix] == [len(run["scenario"].eval_sets)] * len(run["steps"])
    assert ((evaluated(matrix) >= 0) & (evaluated(matrix) <= 1)).all()


@pytest.mark.parametrize("name", NAMES)
def test_frozen_computation_runs_once_per_image(name: str) -> None:
    run = stream_run(name, kind_for(STRATEGIES.get(name)))
    if not overrides_frozen_inputs(run["strategy"]) or not run["calls"]:
        pytest.skip(f"{name} has no frozen computation to cache (in its test configuration)")
    assert sum(run["calls"]) == run["distinct"]


@pytest.mark.parametrize("name", NAMES)
def test_trains_with_augmentation_and_k_cached_views(name: str) -> None:
    """augment on, K = 2: every strategy trains; one that reads only its frozen cache runs the frozen part twice
    per training image (whatever the epochs) and once per evaluation image."""
    scenario = small_scenario(kind_for(STRATEGIES.get(name)))
    strategy = build(name, scenario.info(), epochs=3, batch_size=8, augment="shift_scale", augment_views=2)
    calls: list[int] = []
    if overrides_frozen_inputs(strategy):
        original = strategy.frozen_inputs

        def counting(x: torch.Tensor) -> torch.Tensor | None:
            out = original(x)
            if out is not None:  # None: nothing to cache in this configuration
                calls.append(int(x.shape[0]))
            return out

        strategy.frozen_inputs = counting
    steps = steps_for(strategy, scenario)
    result = run_stream(strategy, steps, scenario.eval_sets, CPU, seed=0, show_progress=False)
    matrix = evaluated(result.acc_matrix)
    assert ((matrix >= 0) & (matrix <= 1)).all()
    if calls and not strategy.needs_pixels and any(p.requires_grad for p in strategy.parameters()):
        train = sum(len(s.data) + (len(s.unlabelled) if s.unlabelled is not None else 0) for s in steps)
        assert sum(calls) == 2 * train + sum(len(e.data) for e in scenario.eval_sets)


@pytest.mark.parametrize("name", NAMES)
def test_training_free_means_nothing_declared(name: str) -> None:
    """`training_free` strategies declare no trainable parameter; every other one declares some."""
    cls = STRATEGIES.get(name)
    strategy = build(name, tiny_scenario(kind_for(cls)).info())
    declared = any(True for _ in strategy.trainable_parameters())
    assert declared != cls.training_free
