"""The training and evaluation loop every strategy runs in: device, autocast, seeding, freezing, caching,
training augmentation, progress.

The harness is the only place that iterates over data. It turns a stream of training steps into an accuracy
matrix: after training step i, it evaluates on every evaluation set j, giving A[i, j].
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.core.data import Batch, EvalSet, TaskContext, TensorData, TrainStep, image_batches, label_space_for
from bench.core.device import autocast, inference_batch_size
from bench.core.strategy import Strategy, count_trainable, freeze_all_but_trainable, mask_logits
from bench.train.guards import check_finite_logits, check_finite_loss
from bench.train.augment import augment, augment_generator, check_augment
from bench.train.checkpoint import CellCheckpoint, Progress, WithinTask
from bench.train.feature_cache import FeatureStore, module_fingerprint, trusted_frozen_key

# ---------------------------------------------------------------------------------------- device & seeding


# ------------------------------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak memory of a block: CUDA max-allocated on GPU; on CPU, the peak resident set size above the RSS at
    entry, sampled every 5 ms (torch's CPU allocator keeps no statistics, so sampling is the honest option)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb: float = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _sample(self, base: float) -> None:
        while not self._stop.wait(0.005):
            self.peak_mb = max(self.peak_mb, self._rss_mb() - base)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif os.path.exists("/proc/self/statm"):
            self._thread = threading.Thread(target=self._sample, args=(self._rss_mb(),), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif hasattr(self, "_thread"):
            self._stop.set()
            self._thread.join()


# ------------------------------------------------------------------------------------------------ batches
def to_pixels(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device, non_blocking=True).float().div_(255.0)


def index_batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def has_frozen_inputs(strategy: Strategy) -> bool:
    """Whether the strategy overrides `frozen_inputs`, i.e. has a frozen computation worth caching."""
    return type(strategy).frozen_inputs is not Strategy.frozen_inputs


@dataclass(frozen=True)
class SharedFrozen:
    """What makes a strategy's frozen features shareable across cells: the disk store, the declared frozen
    function and the fingerprint of the backbone before any training (see bench/train/feature_cache.py)."""

    store: FeatureStore
    frozen_key: str
    backbone: str

    @classmethod
    def for_strategy(cls, strategy: Strategy, store: FeatureStore | None) -> "SharedFrozen | None":
        """None when there is no store or the strategy declares no (trustworthy) frozen key."""
        if store is None or not has_frozen_inputs(strategy):
            return None
        key = trusted_frozen_key(strategy)
        return None if key is None else cls(store, key, module_fingerprint(strategy.backbone))


@torch.no_grad()
def fill_cache(strategy: Strategy, data: TensorData, device: torch.device, batch_size: int | None = None,
               shared: SharedFrozen | None = None) -> None:
    """Run the strategy's frozen computation once per image and keep it (valid while no augmentation changes
    the pixels: evaluation always, training when `cfg.augment` is "none"). With `shared`, the features come from
    (or go to) the suite-wide disk cache, so other cells computing the same function on the same images skip it."""
    if data.cached is not None or not has_frozen_inputs(strategy) or len(data) == 0:
        return
    batch_size = batch_size or inference_batch_size(device)

    def compute() -> torch.Tensor | None:
        was_training = strategy.training
        strategy.eval()  # frozen parts never run dropout
        parts = []
        try:
            for _, images in image_batches(data, batch_size):  # on-disk data: decoded by DataLoader workers
                with autocast(device):
                    out = strategy.frozen_inputs(to_pixels(images, device))
                if out is None:
                    return None
                parts.append(out.float().cpu())
        finally:
            strategy.train(was_training)
        return torch.cat(parts)

    key = shared.store.key(shared.frozen_key, shared.backbone, data.images, batch_size, device) if shared else None
    data.cached = compute() if key is None else shared.store.get_or_compute(key, compute)


def make_batch(strategy: Strategy, data: TensorData, index: torch.Tensor, device: torch.device) -> Batch:
    cached = data.cached[index].to(device) if data.cached is not None else None
    pixels = None if (cached is not None and not strategy.needs_pixels) else to_pixels(data.images[index], device)
    return Batch(x=pixels, y=data.labels[index].to(device), cached=cached)


# ------------------------------------------------------------------------------------------- augmentation
@dataclass
class TrainAugment:
    """Training augmentation of one cell (`cfg.augment`, `cfg.augment_views`), drawn from its own seeded
    generator. Two ways to feed augmented images to a strategy:

    - cached views (K = `augment_views` > 0, strategies with a frozen cache and `needs_pixels = False`): the frozen
      inputs of K augmented views of every training image are computed once, and epoch e trains on view e mod K.
      Every view is used equally often, and with K >= epochs each epoch sees fresh views, as on the fly would.
    - on the fly (K = 0, or a strategy that reads pixels): each batch's pixels are augmented, and a frozen cache,
      if any, is recomputed from them, since a cache of the plain images would not match what is trained on.
    """

    kind: str
    views: int
    generator: torch.Generator

    @classmethod
    def for_strategy(cls, strategy: Strategy, seed: int) -> "TrainAugment | None":
        """The cell's augmentation, or None when `cfg.augment` is "none" (the plain, cached path)."""
        cfg = strategy.cfg
        check_augment(cfg.augment)
        if cfg.augment_views < 0:
            raise ValueError(f"{strategy.name}: augment_views must be >= 0, got {cfg.augment_views}")
        if cfg.augment == "none":
            return None
        return cls(cfg.augment, cfg.augment_views, augment_generator(seed))

    def uses_views(self, strategy: Strategy) -> bool:
        return self.views > 0 and has_frozen_inputs(strategy) and not strategy.needs_pixels

    @torch.no_grad()
    def frozen_views(self, strategy: Strategy, data: TensorData, device: torch.device,
                     batch_size: int = 256) -> list[TensorData] | None:
        """K copies of `data` whose caches hold the frozen inputs of K augmented views of its images, view after
        view; None when this strategy trains on the fly instead."""
        if not self.uses_views(strategy) or len(data) == 0:
            return None
        was_training = strategy.training
        strategy.eval()  # frozen parts never run dropout
        views = []
        for _ in range(self.views):
            parts = []
            for index in index_batches(len(data), batch_size, None):
                pixels = augment(self.kind, to_pixels(data.images[index], device), self.generator)
                with autocast(device):
                    out = strategy.frozen_inputs(pixels)
                if out is None:  # nothing to cache after all
                    strategy.train(was_training)
                    return None
                parts.append(out.float().cpu())
            views.append(TensorData(data.images, data.labels, torch.cat(parts)))
        strategy.train(was_training)
        return views

    @torch.no_grad()
    def _frozen(self, strategy: Strategy, pixels: torch.Tensor, device: torch.device) -> torch.Tensor | None:
        was_training = strategy.training
        strategy.eval()
        with autocast(device):
            out = strategy.frozen_inputs(pixels)
        strategy.train(was_training)
        return None if out is None else out.float()

    def batch(self, strategy: Strategy, data: TensorData, index: torch.Tensor, device: torch.device) -> Batch:
        """A training batch augmented on the fly, its frozen inputs recomputed from the augmented pixels."""
        pixels = augment(self.kind, to_pixels(data.images[index], device), self.generator)
        cached = self._frozen(strategy, pixels, device) if has_frozen_inputs(strategy) else None
        x = None if (cached is not None and not strategy.needs_pixels) else pixels
        return Batch(x=x, y=data.labels[index].to(device), cached=cached)


# ------------------------------------------------------------------------------------------------ training
def build_optimizer(strategy: Strategy, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    cfg = strategy.cfg
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"{strategy.name}: unknown optimizer {cfg.optimizer!r}; valid: sgd, adam, adamw")


SCHEDULES = ("cosine", "constant", "coda_cosine")


def warmup_cosine(total_steps: int, warmup_steps: int, schedule: str = "cosine",
                  warmup_factor: float | None = None, steps_per_epoch: int = 1) -> "callable":
    """Learning-rate factor per optimiser step: warm-up (a linear ramp, or the constant `warmup_factor` of the peak
    as Dassl's ConstantWarmupScheduler), then cosine decay to 0, or (`schedule="constant"`) the peak rate, or
    (`"coda_cosine"`, CODA-Prompt's official CosineSchedule) a factor fixed within each epoch e of E,
    cos(99 pi e / (200 (E - 1))): 1 in the first epoch, 1.6% in the last."""
    if schedule not in SCHEDULES:  # configs are checked on load; this catches a hand-built one
        raise ValueError(f"schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    epochs = max(1, -(-total_steps // max(1, steps_per_epoch)))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return warmup_factor if warmup_factor is not None else (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        if schedule == "coda_cosine":
            epoch = min(step // max(1, steps_per_epoch), epochs - 1)  # a short last batch is no extra epoch
            return 1.0 if epoch == 0 else math.cos(99 * math.pi * epoch / (200 * (epochs - 1)))
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


@dataclass
class EpochCheckpoints:
    """The hooks of checkpoints inside a task (bench/train/checkpoint.py): resume at the epoch saved, save at an
    epoch boundary when due. `prior_seconds`: training time of the task before a resume."""

    checkpoint: CellCheckpoint
    generators: dict[str, torch.Generator | None]
    started: float
    prior_seconds: float = 0.0


def train_step_data(strategy: Strategy, data: TensorData, ctx: TaskContext, device: torch.device,
                    generator: torch.Generator, params: list[torch.nn.Parameter], show: bool,
                    augmenter: TrainAugment | None = None, epochs: EpochCheckpoints | None = None) -> float:
    """Train on one step's data for `cfg.epochs` epochs; returns the mean loss of the last epoch. `epochs`:
    continue from a checkpoint saved inside this task, and save one at epoch boundaries when due."""
    cfg = strategy.cfg
    if not params or cfg.epochs <= 0 or len(data) == 0 or not strategy.trains_on(ctx):
        return float("nan")
    unlabelled = ctx.unlabelled
    views = target_views = None
    if augmenter is not None:
        views = augmenter.frozen_views(strategy, data, device)
        if unlabelled is not None:
            target_views = augmenter.frozen_views(strategy, unlabelled, device)

    def batch_of(source: TensorData, epoch_views: list[TensorData] | None, epoch: int,
                 index: torch.Tensor) -> Batch:
        if epoch_views is not None:  # the cache of view (epoch mod K) already holds augmented frozen inputs
            return make_batch(strategy, epoch_views[epoch % len(epoch_views)], index, device)
        if augmenter is not None:
            return augmenter.batch(strategy, source, index, device)
        return make_batch(strategy, source, index, device)

    optimizer = build_optimizer(strategy, params)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup_factor = cfg.warmup_lr / cfg.lr if cfg.warmup_lr > 0 else None
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total, cfg.warmup_epochs * steps_per_epoch, cfg.schedule, warmup_factor,
                                 steps_per_epoch))
    bar = tqdm(total=total, desc=f"  {strategy.name} step {ctx.index + 1}/{ctx.num_steps}", leave=False,
               disable=not show, unit="batch")
    strategy.train()
    last_epoch_losses: list[float] = []
    first_epoch = 0
    if epochs is not None:  # after the replayed task start (caches, views): the saved mid-task state, if any
        position = epochs.checkpoint.resume_within(strategy, epochs.generators, optimizer, scheduler)
        if position is not None:
            first_epoch, last_epoch_losses, epochs.prior_seconds = (position.epochs, position.last_losses,
                                                                    position.train_seconds)
            bar.update(first_epoch * steps_per_epoch)
    for epoch in range(first_epoch, cfg.epochs):
        last_epoch_losses = []
        target_batches = (index_batches(len(unlabelled), cfg.batch_size, generator)
                          if unlabelled is not None and len(unlabelled) else None)
        for index in index_batches(len(data), cfg.batch_size, generator):
            batch = batch_of(data, views, epoch, index)
            if target_batches is not None:
                target_index = next(target_batches, None)
                if target_index is None:  # the unlabelled set is smaller: start it again
                    target_batches = index_batches(len(unlabelled), cfg.batch_size, generator)
                    target_index = next(target_batches)
                target = batch_of(unlabelled, target_views, epoch, target_index)
                batch.target_x, batch.target_cached = target.x, target.cached
            with autocast(device):
                loss = strategy.training_loss(batch, ctx)
            check_finite_loss(loss, ctx.index, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            last_epoch_losses.append(float(loss.detach()))
            bar.update(1)
        if epochs is not None and epoch + 1 < cfg.epochs and epochs.checkpoint.due():
            spent = epochs.prior_seconds + time.perf_counter() - epochs.started
            epochs.checkpoint.save_within(strategy, epochs.generators, optimizer, scheduler,
                                          WithinTask(ctx.index, epoch + 1, last_epoch_losses, spent))
    bar.close()
    return float(np.mean(last_epoch_losses))


@torch.no_grad()
def evaluate(strategy: Strategy, data: TensorData, label_space: Sequence[int] | None, device: torch.device,
             batch_size: int | None = None) -> float:
    """Top-1 accuracy on `data`, predicting among `label_space` (None: all classes)."""
    if len(data) == 0:
        return float("nan")
    batch_size = batch_size or inference_batch_size(device)
    strategy.eval()
    correct = 0
    strategy.scoring_classes = sorted(label_space) if label_space is not None else None
    try:
        for index in index_batches(len(data), batch_size, None):
            batch = make_batch(strategy, data, index, device)
            with autocast(device):
                logits = strategy(batch.x, batch.cached)
            check_finite_logits(logits, f"{len(data)} images")
            correct += int((mask_logits(logits.float(), label_space).argmax(-1) == batch.y).sum())
    finally:
        strategy.scoring_classes = None
    return correct / len(data)


# ------------------------------------------------------------------------------------------------- streams


@dataclass
class StreamResult:
    acc_matrix: list[list[float | None]]  # None: not evaluated (the set's classes cannot have been learned yet)
    eval_names: list[str]
    trainable_params: int
    train_seconds: float
    eval_seconds: float
    peak_memory_mb: float
    losses: list[float] = field(default_factory=list)
    initial_accuracy: list[float] = field(default_factory=list)  # the untrained model on each eval set


def fresh(data: TensorData) -> TensorData:
    """A per-cell view of shared data, so one strategy's frozen cache never leaks into another cell."""
    return TensorData(data.images, data.labels, None)


def learnable(labels: set[int], label_space: Sequence[int]) -> bool:
    """Whether any image of an evaluation set can be predicted right: none can while none of its classes is in
    the label space (a class-incremental task not trained yet scores 0 by construction, so it is not scored)."""
    return not labels.isdisjoint(label_space)


def evaluate_row(strategy: Strategy, evals: Sequence[EvalSet], labels: Sequence[set[int]],
                 spaces: Sequence[list[int]], device: torch.device,
                 shared: SharedFrozen | None) -> list[float | None]:
    """One evaluation pass: the accuracy on each set among its label space, None for sets not learnable yet."""
    strategy.eval()
    strategy.before_eval()
    row: list[float | None] = []
    for eval_set, set_labels, space in zip(evals, labels, spaces):
        if not learnable(set_labels, space):
            row.append(None)
            continue
        fill_cache(strategy, eval_set.data, device, shared=shared)
        row.append(evaluate(strategy, eval_set.data, space, device))
    strategy.after_eval()
    return row


def run_stream(strategy: Strategy, steps: Sequence[TrainStep], eval_sets: Sequence[EvalSet],
               device: torch.device, seed: int, show_progress: bool = True,
               feature_store: FeatureStore | None = None, checkpoint: CellCheckpoint | None = None) -> StreamResult:
    """Train on each step in order; after each, evaluate on every evaluation set. Returns the accuracy matrix,
    with None where a set's classes cannot have been learned yet, and the untrained model's accuracy on each
    set (among its own label space, else every class of the stream), measured before the first step.
    `feature_store`: a suite-wide disk cache for frozen features the strategy declares shareable. `checkpoint`:
    saved after every task but the last and at epoch boundaries inside a task when due, and resumed from when it
    exists (bench/train/checkpoint.py)."""
    strategy.to(device)
    params = freeze_all_but_trainable(strategy)
    shared = SharedFrozen.for_strategy(strategy, feature_store)  # fingerprints the backbone before training
    generator = torch.Generator().manual_seed(seed)
    augmenter = TrainAugment.for_strategy(strategy, seed)
    evals = [EvalSet(e.name, fresh(e.data), e.label_space) for e in eval_sets]
    eval_labels = [set(e.data.labels.unique().tolist()) for e in evals]
    matrix: list[list[float | None]] = []
    losses: list[float] = []
    train_seconds = eval_seconds = 0.0
    seen: list[int] = []
    generators = {"shuffle": generator, "augment": augmenter.generator if augmenter is not None else None}
    resumed = checkpoint.load(strategy, generators) if checkpoint is not None else None
    with PeakMemory(device) as memory:
        if resumed is None:
            start = time.perf_counter()
            every_class = sorted({c for step in steps for c in step.classes})
            initial = evaluate_row(strategy, evals, eval_labels, [label_space_for(e, every_class) for e in evals],
                                   device, shared)
            eval_seconds += time.perf_counter() - start
        else:  # a killed or requeued cell: the tasks before `done` are in the checkpoint
            matrix, losses, initial = resumed.matrix, resumed.losses, resumed.initial
            train_seconds, eval_seconds = resumed.train_seconds, resumed.eval_seconds
            seen = sorted({c for step in steps[:resumed.done] for c in step.classes})
        for index, step in enumerate(steps):
            if resumed is not None and index < resumed.done:
                continue
            seen = sorted(set(seen) | set(step.classes))
            ctx = TaskContext(index=index, num_steps=len(steps), train_classes=list(step.classes),
                              seen_classes=seen, domain=step.domain, train_data=fresh(step.data),
                              unlabelled=fresh(step.unlabelled) if step.unlabelled is not None else None)
            if checkpoint is not None:  # the task's start, for checkpoints saved inside it
                checkpoint.begin_task(strategy, generators, Progress(index, matrix, losses, initial, train_seconds,
                                                                     eval_seconds))
            start = time.perf_counter()
            hooks = EpochCheckpoints(checkpoint, generators, start) if checkpoint is not None else None
            strategy.before_task(ctx)
            data = strategy.adapt_train_set(ctx.train_data, ctx)
            if augmenter is None:  # with augmentation a cache of the plain training images is never read
                fill_cache(strategy, data, device, shared=shared)
                if ctx.unlabelled is not None:
                    fill_cache(strategy, ctx.unlabelled, device, shared=shared)
            losses.append(train_step_data(strategy, data, ctx, device, generator, params, show_progress,
                                          augmenter, hooks))
            strategy.after_task(ctx)
            train_seconds += time.perf_counter() - start + (hooks.prior_seconds if hooks is not None else 0.0)

            start = time.perf_counter()
            matrix.append(evaluate_row(strategy, evals, eval_labels, [label_space_for(e, seen) for e in evals],
                                       device, shared))
            eval_seconds += time.perf_counter() - start
            if checkpoint is not None and index + 1 < len(steps):
                checkpoint.save(strategy, generators, Progress(index + 1, matrix, losses, initial, train_seconds,
                                                               eval_seconds))
    return StreamResult(acc_matrix=matrix, eval_names=[e.name for e in evals],
                        trainable_params=count_trainable(strategy), train_seconds=train_seconds,
                        eval_seconds=eval_seconds, peak_memory_mb=memory.peak_mb, losses=losses,
                        initial_accuracy=initial)
