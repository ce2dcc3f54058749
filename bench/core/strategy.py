"""The strategy contract: what a method trains, how it predicts, and what a leaderboard must say about it.

A strategy is an `nn.Module` holding the backbone plus its own parts. The harness (`bench.train.harness`) owns the
loop: it freezes everything, unfreezes exactly `trainable_parameters()`, builds the optimizer from the config,
moves to the device, seeds, autocasts, and calls the hooks below. A strategy never writes a training loop.

The pieces, in the order the harness uses them:
- `frozen_inputs(x)`: the part of the forward pass that depends only on frozen weights (a ViT's features for a
  linear probe, the L2P query, CLIP image features). The harness computes it once per image and caches it
  (with training augmentation: once per augmented view, or per batch; see `bench.train.harness.TrainAugment`).
- `forward(x, cached)`: logits over all classes of the scenario. `x` is `None` when the strategy declares
  `needs_pixels = False` and a cache is available (the harness then never touches the backbone).
- `training_loss(batch, ctx)`: defaults to cross-entropy over the classes seen so far.
- hooks `before_task`, `after_task`, `before_eval`, `adapt_train_set`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.config_values import OMITTED_WHEN_OFF, plain_config  # noqa: F401  (re-exported)
from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.registry import Registry

SCENARIO_KINDS = ("class_incremental", "domain_incremental", "base_to_new", "domain_adaptation")
NEG_INF = -1e4  # masks logits of classes outside the label space; finite so that bf16 and CE stay stable


# ------------------------------------------------------------------------------------------- data carriers


# ------------------------------------------------------------------------------------------------- flags
@dataclass(frozen=True)
class Flags:
    """Comparability flags: shown on every leaderboard row, so unlike protocols are never silently compared."""

    task_id_at_test: bool = False  # uses the task identity at test time
    batchwise_inference: bool = False  # a prediction depends on other images of the test batch
    extra_forward_passes: int = 0  # frozen passes per image beyond the main one (L2P's query pass)
    replay_memory: bool = False  # stores past training images
    unlabelled_target: bool = False  # trains on unlabelled target-domain images
    class_names: bool = False  # reads class names (text prompts): can predict classes it never trained on
    joint_training: bool = False  # sees all tasks at once: an upper bound, not a continual learner

    def short(self) -> str:
        parts = []
        if self.task_id_at_test:
            parts.append("task-id")
        if self.batchwise_inference:
            parts.append("batch-vote")
        if self.extra_forward_passes:
            parts.append(f"+{self.extra_forward_passes} fwd")
        if self.replay_memory:
            parts.append("replay")
        if self.unlabelled_target:
            parts.append("unlabelled-target")
        if self.class_names:
            parts.append("class-names")
        if self.joint_training:
            parts.append("joint")
        return ", ".join(parts) or "—"


# ------------------------------------------------------------------------------------------------ config
def hp(default: Any, help: str, **allowed: Any) -> Any:  # noqa: A002 - mirrors argparse's name
    """A config field with one line of help (shown by `run_bench.py list --json`). `allowed` may declare the
    field's range (`ge`, `gt`, `le`, `lt`, `choices`), checked by `bench.core.validation`."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("configs are frozen: use tuples, not mutable defaults")
    unknown = set(allowed) - {"ge", "gt", "le", "lt", "choices"}
    if unknown:
        raise TypeError(f"hp(): unknown range keyword(s) {sorted(unknown)}")
    return field(default=default, metadata={"help": help, **allowed})


@dataclass(frozen=True)
class StrategyConfig:
    """Optimisation knobs the harness reads; every strategy config extends this."""

    epochs: int = hp(3, "passes over each task's training data")
    batch_size: int = hp(64, "training batch size")
    optimizer: str = hp("sgd", "sgd | adam | adamw")
    lr: float = hp(0.05, "peak learning rate (decayed within each task as `schedule` says)")
    momentum: float = hp(0.9, "SGD momentum")
    weight_decay: float = hp(0.0, "weight decay")
    warmup_epochs: int = hp(0, "warm-up epochs at the start of each task (linear ramp unless warmup_lr is set)")
    warmup_lr: float = hp(0.0, "> 0: the warm-up epochs run at this constant rate instead of a linear ramp (Dassl's "
                               "ConstantWarmupScheduler, 1e-5 in CoOp/CoCoOp)")
    schedule: str = hp("cosine", "after warm-up: cosine (decay to 0 within each task) | constant (L2P's official "
                                 "recipe) | coda_cosine (per-epoch, ends at 1.6%: CODA-Prompt's official)")
    grad_clip: float = hp(0.0, "clip the gradient norm to this value (0: off)")
    augment: str = hp("none", "training augmentation: none | shift_scale (zoom 0.9-1.1x and shift <= 3 px per "
                              "image, seeded; no flips: glyphs are chiral) | rrc_flip (random-resized crop + flip, "
                              "the prompt-pool codes' transform, for natural images); evaluation never augments")
    augment_views: int = hp(0, "with augment on and a frozen cache (needs_pixels=False): K>0 precomputes the frozen "
                               "inputs of K augmented views per training image, epoch e trains on view e mod K; "
                               "0 augments on the fly and reruns the frozen part every batch (exact, slow)")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values; fields in `OMITTED_WHEN_OFF` are left out while they hold their off value and
        that is also the class's default (`from_dict` must fill the same value back: a preset whose default is on,
        e.g. `l2p_cifar`'s `augment: rrc_flip`, writes `augment: none` out when it is switched off)."""
        return plain_config(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "StrategyConfig":
        """Build from a plain dict: typed, range-checked and normalised (`bench.core.validation`); a wrong or
        unknown field raises ConfigError (a ValueError) naming it."""
        from bench.core.validation import validate_config

        return validate_config(cls, values)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


# ---------------------------------------------------------------------------------------------- strategy
class Strategy(nn.Module):
    """Base class. Subclasses set the class attributes and implement `forward`; see the module docstring."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[StrategyConfig]] = StrategyConfig
    family: ClassVar[str] = "baseline"  # baseline | continual | prompt | vision-language
    paper: ClassVar[str] = ""
    backbone_families: ClassVar[tuple[str, ...]] = ("vit", "clip")  # clip: a vision-only strategy gets `.visual`
    needs_text: ClassVar[bool] = False  # True: the strategy needs the whole CLIP model, not only its image tower
    supported_scenarios: ClassVar[tuple[str, ...]] = ("class_incremental", "domain_incremental",
                                                      "domain_adaptation")
    flags: ClassVar[Flags] = Flags()
    needs_pixels: ClassVar[bool] = True  # False: forward reads only the frozen cache
    # True: nothing trains by gradient (zero-shot, class-mean prototypes, closed-form heads set in `after_task`);
    # the contract then expects `trainable_parameters()` to be empty, and the harness's loss to be NaN.
    training_free: ClassVar[bool] = False
    # The registered strategy whose computation this one is, line for line: a subclass that overrides no method and
    # whose config has the same fields and defaults, registered apart only to name it in another family's tables
    # (naive is full fine-tuning). A run computes such a pair once (`bench.run.twins`); tests/test_twins.py holds
    # every declaration to that. Read with `computation_twin`: it is not inherited (EWC subclasses naive).
    same_computation_as: ClassVar[str | None] = None
    # The label space the harness is scoring in `evaluate` (sorted), else None. Logits outside it are masked
    # anyway, so a strategy whose cost grows with the classes (text prompts, captions) may score only these and
    # leave the rest at NEG_INF (see `scatter_logits`); others ignore it.
    scoring_classes: list[int] | None = None

    def __init__(self, cfg: StrategyConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.info = info

    # -- what trains ---------------------------------------------------------------------------------------
    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Named parameters that train. Default: everything the strategy owns outside the backbone."""
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        for name, param in self.named_parameters():
            if id(param) not in backbone_ids:
                yield name, param

    def params_per_new_task(self, new_classes: int) -> int:
        """Parameters one more task (bringing `new_classes` classes) adds to storage. Default 0."""
        return 0

    # -- prediction ----------------------------------------------------------------------------------------
    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor | None:
        """Frozen computation on pixels, cached per image by the harness. None: nothing to cache."""
        return None

    def frozen_key(self) -> str | None:
        """A name for the function `frozen_inputs` computes, with its parameters (e.g. "vit.pooled"): strategies
        declaring the same key on the same backbone and images share one disk-cached feature set across cells.
        It may read only the frozen backbone. None (default): not shared, cached inside the cell only."""
        return None

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def predict_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """End-to-end logits from pixels, differentiable w.r.t. `x` (used by adversarial attacks)."""
        return self(x, self.frozen_inputs(x))

    # -- training ------------------------------------------------------------------------------------------
    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        logits = mask_logits(self(batch.x, batch.cached), ctx.seen_classes)
        return F.cross_entropy(logits, batch.y)

    def trains_on(self, ctx: TaskContext) -> bool:
        """Whether the harness runs gradient steps in step `ctx.index` (APER adapts on the first task only)."""
        return True

    # -- hooks (all optional) ------------------------------------------------------------------------------
    def before_task(self, ctx: TaskContext) -> None:
        """Called before training on step `ctx.index`."""

    def after_task(self, ctx: TaskContext) -> None:
        """Called after training on step `ctx.index` (importance estimation, memory updates, snapshots)."""

    def adapt_train_set(self, data: TensorData, ctx: TaskContext) -> TensorData:
        """The data actually trained on in this step (replay adds its memory here)."""
        return data

    def before_eval(self) -> None:
        """Called once before each evaluation pass (e.g. encode every class prompt once)."""

    def after_eval(self) -> None:
        """Called after each evaluation pass (drop caches that are only valid while weights are fixed)."""


def mask_logits(logits: torch.Tensor, label_space: Sequence[int] | None) -> torch.Tensor:
    """Keep the logits of `label_space`, push every other class to a large negative value."""
    if label_space is None or len(label_space) == logits.shape[-1]:
        return logits
    keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    keep[torch.as_tensor(list(label_space), device=logits.device)] = True
    return logits.masked_fill(~keep, NEG_INF)


def scatter_logits(scores: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Scores `(B, k)` of `classes` placed into logits `(B, num_classes)`, every other class at NEG_INF: what
    `mask_logits` would leave of logits computed for every class."""
    out = scores.new_full((scores.shape[0], num_classes), NEG_INF)
    return out.index_copy(1, classes.to(scores.device), scores)


# ---------------------------------------------------------------------------------------------- registry
STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(name: str, config: type[StrategyConfig] = StrategyConfig) -> Callable:
    """Class decorator: give the strategy its name and config class and add it to the registry."""

    def wrap(cls: type[Strategy]) -> type[Strategy]:
        if not issubclass(config, StrategyConfig):
            raise TypeError(f"{name}: config {config.__name__} must extend StrategyConfig")
        if not dataclasses.is_dataclass(config) or not config.__dataclass_params__.frozen:
            raise TypeError(f"{name}: config {config.__name__} must be a frozen dataclass")
        cls.name = name
        cls.config_cls = config
        STRATEGIES.add(name, cls)
        return cls

    return wrap


def computation_twin(cls: type[Strategy]) -> str | None:
    """The strategy `cls` itself declares as its computation (`Strategy.same_computation_as`), never one a base
    class declared: a subclass that changes the training (EWC of naive) is its own computation."""
    return vars(cls).get("same_computation_as")


def build_strategy(name: str, backbone: nn.Module, info: ScenarioInfo,
                   overrides: dict[str, Any] | None = None) -> Strategy:
    """Instantiate a registered strategy on a backbone; config fields come from `overrides`."""
    cls = STRATEGIES.get(name)
    cfg = cls.config_cls.from_dict(overrides or {})
    if info.kind not in cls.supported_scenarios:
        raise ValueError(f"strategy {name!r} does not support {info.kind!r} scenarios "
                         f"(supports: {', '.join(cls.supported_scenarios)})")
    return cls(cfg, backbone, info)


def freeze_all_but_trainable(strategy: Strategy) -> list[nn.Parameter]:
    """Freeze every parameter, then unfreeze exactly the declared ones. Returns the trainable list."""
    for param in strategy.parameters():
        param.requires_grad_(False)
    trainable = [p for _, p in strategy.trainable_parameters()]
    for param in trainable:
        param.requires_grad_(True)
    return trainable


def count_stored(strategy: Strategy) -> int:
    """Values a strategy keeps besides its parameters and the backbone's: its own buffers (prototype sums, RanPAC's
    projection, Gram matrix and head), what a training-free strategy stores instead of training. Buffers inside
    the backbone (its own state) do not count."""
    backbone = {id(b) for b in strategy.backbone.buffers()} if isinstance(strategy.backbone, nn.Module) else set()
    return sum(b.numel() for b in strategy.buffers() if id(b) not in backbone)


def count_trainable(strategy: Strategy) -> int:
    seen: set[int] = set()
    total = 0
    for _, param in strategy.trainable_parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total
