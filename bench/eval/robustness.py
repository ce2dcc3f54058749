"""Robustness of a trained cell: adversarial accuracy (FGSM, PGD, AutoAttack) and common-corruption accuracy.

Runs once per cell, after training, on the final model (`run_cell(..., after_training=robustness_hook())`), on a
fixed seeded subset of every evaluation set. Attacks perturb the pixels in [0, 1] of the whole prompted model
(`Strategy.predict_pixels`: prompts, query pass and, for CLIP strategies, the prompted text features held fixed by
`before_eval`). Predictions are among the evaluation set's label space, as in the harness's clean evaluation.

Conventions a reader of the numbers needs:
- FGSM/PGD accuracy at a budget counts an image as robust only if it is classified correctly clean and under the
  same attack at that budget and every smaller one (each of those adversarial images lies inside the larger ball
  too), so accuracy never rises with the budget.
- AutoAttack is pyautoattack's "standard" version, on the first `autoattack_subset_size` images of each subset;
  evaluation sets with the same label space are attacked in one pooled run (Square's 5000 queries dominate the
  cost and do not grow with the number of images). With fewer than 10 classes it targets all the other classes.
- Cost, not numbers: an image already broken at a smaller budget (or wrong clean) is not attacked again, and
  sets sharing a label space are attacked together (`robust_only_attacks`); the records equal attacking every
  image set by set (`every_image=True`, tests/test_robustness.py, `python -m bench.perf`).
- Corruptions are imagecorruptions' 15 ImageNet-C corruptions with their ImageNet-C constants (CIFAR-10-C's
  differ), applied to the stored 32x32 uint8 images.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from bench.core.data import TensorData, label_space_for
from bench.core.seeding import derive_seed as _seed  # stable 31-bit seed per use: subset, PGD start, image
from bench.core.strategy import Strategy
from bench.eval.budgets import parse_budget  # noqa: F401  (re-exported: suites and tests read it here)
from bench.eval.robustness_config import COMMON_CORRUPTIONS, RobustnessConfig  # noqa: F401  (re-exported)
from bench.eval.attacks import check_budget, fgsm, input_gradient, pgd
from bench.train.feature_cache import FeatureStore, default_feature_store, module_fingerprint, trusted_frozen_key
from bench.train.harness import has_frozen_inputs, to_pixels

log = logging.getLogger("promptshift")

# These draw from a generator of their own (seed=None: fresh OS entropy), not from numpy's global RNG.
OWN_SEED_CORRUPTIONS = ("impulse_noise", "glass_blur")
CONSTANTS = "ImageNet-C"


AUTOATTACK_MISSING = ("AutoAttack is not installed: pip install 'promptshift[autoattack]' (or set `autoattack: false` "
                      "in the suite's robustness settings)")


def missing_autoattack(cells: Sequence[Any]) -> str | None:
    """The one-line error for a run whose suite asks for AutoAttack without the optional package, else None."""
    import importlib.util

    wants = any(c.robustness and RobustnessConfig.from_dict(c.robustness).autoattack for c in cells)
    return AUTOATTACK_MISSING if wants and importlib.util.find_spec("pyautoattack") is None else None


# --------------------------------------------------------------------------------------------- plumbing
@contextlib.contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for one library call and restore its state afterwards: imagecorruptions draws
    from the global RNG, and nothing else (training, other cells) may see a changed stream."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def evaluating(strategy: Strategy) -> Iterator[None]:
    """Eval mode with the strategy's evaluation hooks around it (CLIP strategies fix their text features)."""
    was_training = strategy.training
    strategy.eval()
    strategy.before_eval()
    try:
        yield
    finally:
        strategy.after_eval()
        strategy.train(was_training)


class LabelSpaceClassifier(nn.Module):
    """The whole prompted model from pixels to logits over the label space only.

    Same argmax as `mask_logits` on the full logits, but the other classes are dropped rather than set to a large
    negative value: AutoAttack's targeted attacks pick target classes and its DLR loss reads the sorted logits, and
    masked classes must not be among them. Runs in float32: under bf16 autocast the pixels would be rounded to
    steps of 1/128 near 1.0, coarser than the 1/255 budget."""

    def __init__(self, strategy: Strategy, label_space: list[int]) -> None:
        super().__init__()
        self.strategy = strategy
        self.register_buffer("space", torch.tensor(sorted(label_space), dtype=torch.long), persistent=False)

    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """The strategy scores only this label space while the block runs (`Strategy.scoring_classes`, as in the
        harness's clean evaluation): strategies whose cost grows with the classes (CoCoOp's per-image prompts,
        CoCa's captions) then compute 34 of 67 classes on a base-to-new set instead of all 67. The label space's
        logits are the same either way, and the others are dropped here."""
        strategy = self.strategy
        previous = strategy.scoring_classes
        strategy.scoring_classes = self.space.tolist()
        try:
            yield
        finally:
            strategy.scoring_classes = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.scoring():
            return self.strategy.predict_pixels(x).float().index_select(1, self.space)

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Scenario class indices -> positions in the label space."""
        index = torch.searchsorted(self.space, labels).clamp(max=len(self.space) - 1)
        if not bool((self.space[index] == labels).all()):
            raise ValueError("an evaluation label lies outside the label space it is predicted among")
        return index


def subset_indices(n: int, size: int, seed: int) -> torch.Tensor:
    """A fixed random subset (sorted) of `size` of `n` items, from a local generator."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:min(size, n)].sort().values


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


@torch.no_grad()
def _correct(model: LabelSpaceClassifier, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[b]).argmax(-1) == y[b] for b in _batches(len(y), batch_size)]).cpu()


def _by_rows(fn: Callable[..., torch.Tensor], batch_size: int, *rows: torch.Tensor) -> torch.Tensor:
    """`fn` on batches of at most `batch_size` rows of `rows`, concatenated. A batch of one row is computed as two
    copies of it: a single image takes other kernels in places (CLIP's image tower: matrix-vector products, 2e-7
    off the batched logits), and the per-set evaluation never had a batch of one, so neither does the pooled one.
    Every model here computes an image's logits and gradient alone: with two or more rows, the same bits whatever
    the other rows are (tests/test_robustness.py)."""
    out = []
    for b in _batches(len(rows[0]), batch_size):
        part = [r[b] for r in rows]
        out.append(fn(*part) if b.stop - b.start > 1 else fn(*[torch.cat([p, p]) for p in part])[:1])
    return torch.cat(out)


def _rate(correct: torch.Tensor) -> float:
    """Fraction of True entries, computed in Python floats (a float32 mean prints 0.0833333358...)."""
    return int(correct.sum()) / len(correct) if len(correct) else float("nan")


# ------------------------------------------------------------------------------------------ adversarial
def attack_accuracies(model: LabelSpaceClassifier, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor,
                      cfg: RobustnessConfig, seed: int) -> dict[str, dict[str, float]]:
    """FGSM and PGD accuracy per budget, cumulative over budgets (see the module docstring).

    Every budget is attacked in the same batches (one eps per image): a small subset then still fills a batch."""
    budgets = sorted(cfg.eps, key=parse_budget)
    eps = torch.tensor([parse_budget(b) for b in budgets]).repeat_interleave(len(y))
    xs, ys = x.repeat(len(budgets), *[1] * (x.dim() - 1)), y.repeat(len(budgets))
    out: dict[str, dict[str, float]] = {}
    for name, enabled in (("fgsm", cfg.fgsm), ("pgd", cfg.pgd)):
        if not enabled:
            continue
        generator = torch.Generator().manual_seed(_seed(seed, name))
        if name == "fgsm":  # one gradient per image serves every budget (its sign does not depend on eps)
            sign = torch.cat([input_gradient(model, x[b], y[b]).sign() for b in _batches(len(y), cfg.batch_size)])
            adv = [fgsm(model, xs, ys, eps, sign=sign.repeat(len(budgets), *[1] * (x.dim() - 1)))]
        else:
            adv = [pgd(model, xs[b], ys[b], eps[b], cfg.pgd_steps, cfg.pgd_step_fraction * eps[b],
                       cfg.pgd_random_start, generator) for b in _batches(len(ys), cfg.batch_size)]
        correct = _correct(model, torch.cat(adv), ys, cfg.batch_size).view(len(budgets), len(y))
        robust = clean & correct.int().cummin(0).values.bool()  # broken at a smaller budget: broken here too
        out[name] = {b: _rate(r) for b, r in zip(budgets, robust)}
    return out


def _pgd_start_noise(x: torch.Tensor, n_budgets: int, cfg: RobustnessConfig, seed: int) -> torch.Tensor:
    """The uniform noise `attack_accuracies` starts PGD from, `(budgets, N, ...)`: drawn from the same generator in
    the same batches of budget-major rows, so that attacking a subset of the rows later starts each from the same
    point."""
    generator = torch.Generator().manual_seed(_seed(seed, "pgd"))
    rows = n_budgets * len(x)
    noise = [torch.rand((b.stop - b.start, *x.shape[1:]), generator=generator, dtype=x.dtype)
             for b in _batches(rows, cfg.batch_size)]
    return torch.cat(noise).view(n_budgets, len(x), *x.shape[1:]) if noise else x.new_zeros(n_budgets, *x.shape)


@torch.no_grad()
def _correct_rows(model: LabelSpaceClassifier, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    if not len(y):
        return torch.zeros(0, dtype=torch.bool)
    return _by_rows(lambda a, b: (model(a).argmax(-1) == b).cpu(), batch_size, x, y)


def robust_only_attacks(model: LabelSpaceClassifier, parts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                              int]],
                        cfg: RobustnessConfig) -> list[dict[str, dict[str, float]]]:
    """`attack_accuracies` of several image sets `(x, y, clean, seed)` that share one classifier, with the same
    numbers, attacking only the images that can still count.

    An image counts as robust at a budget only if it is right clean and under every smaller budget (module
    docstring), so an image already wrong is never attacked again: the budgets go up one after another, each on
    the images left. Most images do not survive every budget (PGD at 8/255 leaves 0-10% here) and many are wrong
    clean (forgotten tasks of a class-incremental stream): 57% of the attacked rows are left in the default
    suite. The sets are pooled, so that the shrinking batches stay full. Each image gets the gradient sign and
    the PGD starting point it gets in `attack_accuracies` (`_pgd_start_noise`): with models that compute every
    image alone (all but batch-wise voting, which `robustness_report` keeps on the per-set path) the numbers are
    the same, bit for bit."""
    budgets = sorted(cfg.eps, key=parse_budget)
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    clean = torch.cat([p[2] for p in parts]).bool().cpu()
    sizes = [len(p[1]) for p in parts]
    out: list[dict[str, dict[str, float]]] = [{} for _ in parts]
    bs = cfg.batch_size
    for name, enabled in (("fgsm", cfg.fgsm), ("pgd", cfg.pgd)):
        if not enabled:
            continue
        alive = clean.clone()
        if name == "fgsm":  # one gradient sign per image serves every budget
            sign = torch.zeros_like(x)
            index = alive.nonzero().squeeze(1).to(x.device)
            if len(index):
                sign[index] = _by_rows(lambda a, b: input_gradient(model, a, b).sign(), bs, x[index], y[index])
        elif cfg.pgd_random_start:
            noise = torch.cat([_pgd_start_noise(p[0].cpu(), len(budgets), cfg, p[3]) for p in parts], dim=1)
        rates: list[dict[str, float]] = [{} for _ in parts]
        for k, budget in enumerate(budgets):
            index = alive.nonzero().squeeze(1)
            if len(index):
                rows = index.to(x.device)
                eps = torch.tensor([parse_budget(budget)]).repeat(len(index)).to(x.device)
                if name == "fgsm":
                    adv = fgsm(model, x[rows], y[rows], eps, sign=sign[rows])
                else:
                    start = noise[k][index] if cfg.pgd_random_start else torch.zeros_like(x[rows])

                    def attack(xb, yb, eb, nb):
                        return pgd(model, xb, yb, eb, cfg.pgd_steps, cfg.pgd_step_fraction * eb,
                                   cfg.pgd_random_start, None, nb)

                    adv = _by_rows(attack, bs, x[rows], y[rows], eps, start)
                alive[index] = _correct_rows(model, adv, y[rows], bs)
            for rate, flags in zip(rates, alive.split(sizes)):
                rate[budget] = _rate(flags)
        for result, rate in zip(out, rates):
            result[name] = rate
    return out


def autoattack_robust(model: LabelSpaceClassifier, x: torch.Tensor, y: torch.Tensor, cfg: RobustnessConfig,
                      seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square): per-image robust flags and what was run.

    One call for all images: Square's 5000 queries cost the same for 4 images as for 80, so callers pool."""
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise ImportError(AUTOATTACK_MISSING) from None

    eps = parse_budget(cfg.autoattack_eps)
    num_classes = len(model.space)
    attack = AutoAttack(model, norm="Linf", eps=eps, version=cfg.autoattack_version, device=x.device, seed=seed)
    version = cfg.autoattack_version
    # Standard AA targets the 9 most likely wrong classes; a smaller label space has fewer to target.
    targets = min(9, num_classes - 1)
    attack.apgd_targeted.n_target_classes = attack.fab.n_target_classes = targets
    if num_classes < 4:  # the targeted DLR loss reads the 3rd and 4th largest logits
        attack.attacks_to_run = ["apgd-ce", "square"]
        version = "custom: apgd-ce, square (fewer than 4 classes)"
    # AutoAttack reseeds the global torch RNG (torch.random.manual_seed) inside its attacks: keep it local.
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=max(1, len(y)))
    check_budget(x_adv, x, eps)
    robust = _correct(model, x_adv, y, cfg.batch_size)
    return robust, {"eps": cfg.autoattack_eps, "version": version, "target_classes": targets}


def autoattack_accuracy(model: LabelSpaceClassifier, x: torch.Tensor, y: torch.Tensor, cfg: RobustnessConfig,
                        seed: int) -> dict[str, Any]:
    """AutoAttack accuracy on the first `autoattack_subset_size` images."""
    robust, run = autoattack_robust(model, x[:cfg.autoattack_subset_size], y[:cfg.autoattack_subset_size], cfg,
                                    seed)
    return {**run, "acc": _rate(robust), "n": int(len(robust))}


# ------------------------------------------------------------------------------------------ corruptions
_CORRUPTED: OrderedDict[str, np.ndarray] = OrderedDict()  # corrupted subsets, shared by every cell of a run
_CACHE_BYTES = 256 * 2**20  # a 48-image 32x32 subset at 75 (corruption, severity) pairs is ~11 MB


@functools.lru_cache(maxsize=1)
def _glass_blur_compiled_once() -> None:
    """Let glass blur's numba kernel be compiled once per machine instead of once per process.

    imagecorruptions compiles its pixel-shuffling kernel (`@njit()`, no disk cache) on first use in every process:
    2.3 s, most of the cost of corrupting a subset, paid again by every worker process that fills a corruption
    cache. The same Python function compiled with numba's own on-disk cache (under the suite's cache folder,
    unless NUMBA_CACHE_DIR says where) loads in 0.2 s. Same function, same compiler: the same pixels
    (tests/test_robustness.py)."""
    try:
        import numba
        from imagecorruptions import corruptions
    except ImportError:
        return
    kernel = getattr(corruptions, "_shuffle_pixels_njit_glass_blur", None)
    if kernel is None or not hasattr(kernel, "py_func"):  # another release: leave the library as it is
        return
    if not os.environ.get("NUMBA_CACHE_DIR"):
        from scenarios.cache import cache_dir

        numba.config.CACHE_DIR = str(cache_dir() / "numba")
    corruptions._shuffle_pixels_njit_glass_blur = numba.njit(cache=True)(kernel.py_func)


def corrupt_images(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt uint8 images `(N, H, W, 3)`; image i uses its own seed, so a result does not depend on which
    other images are in the batch. The global numpy RNG is restored afterwards."""
    from imagecorruptions import corrupt

    if name == "glass_blur":
        _glass_blur_compiled_once()
    out = np.empty_like(images)
    for i, image in enumerate(images):
        image_seed = _seed(seed, name, severity, i)
        extra = {"seed": image_seed} if name in OWN_SEED_CORRUPTIONS else {}
        with numpy_global_seed(image_seed):
            out[i] = corrupt(image, severity=severity, corruption_name=name, **extra)
    return out


def _corruption_library() -> dict[str, str]:
    """Versions of what the corrupted pixels depend on: a new version is a new disk-cache entry."""
    from importlib import metadata

    versions = {}
    for name in ("imagecorruptions-imaug", "imagecorruptions", "numpy", "scipy", "scikit-image", "opencv-python",
                 "opencv-python-headless", "Wand"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _corrupted_stack(images: np.ndarray, variants: list[tuple[str, int]], seed: int) -> np.ndarray:
    """`corrupt_images` of every (corruption, severity) variant, stacked `(V * N, H, W, 3)`: kept in memory for
    the process and on disk for the suite (content-addressed npz through scenarios/cache.py, atomic writes), so
    every strategy, worker and later run sees the same corrupted subset computed once; computing it was most of
    the corruption cost on small backbones (1 pass of 75 corruptions per set per cell)."""
    from scenarios.cache import cached_arrays

    digest = hashlib.sha256(images.tobytes()).hexdigest()
    key = {"kind": "corruptions", "images": digest, "shape": list(images.shape), "seed": seed,
           "variants": [[name, severity] for name, severity in variants], "library": _corruption_library()}
    memory_key = json.dumps(key, sort_keys=True)
    if memory_key in _CORRUPTED:
        _CORRUPTED.move_to_end(memory_key)
        return _CORRUPTED[memory_key]

    def build() -> dict[str, np.ndarray]:
        return {"stack": np.concatenate([corrupt_images(images, n, s, seed) for n, s in variants])}

    out = cached_arrays(key, build)["stack"]
    _CORRUPTED[memory_key] = out
    while sum(a.nbytes for a in _CORRUPTED.values()) > _CACHE_BYTES and len(_CORRUPTED) > 1:
        _CORRUPTED.popitem(last=False)
    return out


def _shared_frozen(model: LabelSpaceClassifier, store: FeatureStore | None) -> tuple[str, str] | None:
    """(frozen key, backbone fingerprint) when the corrupted images' frozen features may come from the suite-wide
    cache: the strategy predicts from pixels the standard way (`forward(x, frozen_inputs(x))`) and declares a
    trusted frozen key. One that also reads pixels (L2P: its prompted pass; the query pass is the frozen part)
    gets both, and skips only the frozen pass. The fingerprint is of the trained backbone (a partly trained one gets its own
    entries)."""
    strategy = model.strategy
    if store is None or type(strategy).predict_pixels is not Strategy.predict_pixels:
        return None
    key = trusted_frozen_key(strategy) if has_frozen_inputs(strategy) else None
    return None if key is None else (key, module_fingerprint(strategy.backbone))


@torch.no_grad()
def _corruption_logits(model: LabelSpaceClassifier, stacked: torch.Tensor, cfg: RobustnessConfig,
                       device: torch.device, store: FeatureStore | None) -> torch.Tensor:
    """Predictions on the corrupted images, batch by batch. Where allowed (`_shared_frozen`) the frozen features
    of the same batches are read from (or written to) the disk cache, so strategies sharing a frozen function
    pass the corrupted images through the backbone once per suite; the logits are the same as `model`'s:
    `predict_pixels` is `forward(x, frozen_inputs(x))`, and the cached features are `frozen_inputs` of the same
    batches."""
    shared = _shared_frozen(model, store)
    batches = list(_batches(len(stacked), cfg.batch_size))
    if shared is None:
        return torch.cat([model(to_pixels(stacked[b], device)).argmax(-1).cpu() for b in batches])
    strategy = model.strategy

    def compute() -> torch.Tensor:
        return torch.cat([strategy.frozen_inputs(to_pixels(stacked[b], device)).float().cpu() for b in batches])

    key = store.key(shared[0], shared[1], stacked, cfg.batch_size, device, precision="fp32")
    features = store.get_or_compute(key, compute) if key is not None else compute()
    with model.scoring():
        return torch.cat([strategy(to_pixels(stacked[b], device) if strategy.needs_pixels else None,
                                   features[b].to(device)).float().index_select(1, model.space).argmax(-1).cpu()
                          for b in batches])


def corruption_accuracies(model: LabelSpaceClassifier, images: torch.Tensor, y: torch.Tensor,
                          cfg: RobustnessConfig, seed: int, device: torch.device,
                          store: FeatureStore | None = None) -> dict[str, Any]:
    """Accuracy per corruption (mean over severities) and their mean. Every (corruption, severity) variant is
    evaluated in the same batches, so that a small subset still fills them."""
    hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    variants = [(name, severity) for name in cfg.corruption_names for severity in cfg.severities]
    stacked = torch.from_numpy(_corrupted_stack(hwc, variants, seed))
    stacked, ys = stacked.permute(0, 3, 1, 2), y.repeat(len(variants))
    correct = (_corruption_logits(model, stacked, cfg, device, store) == ys.cpu()).view(len(variants), len(y))
    per_severity: dict[str, list[float]] = {name: [] for name in cfg.corruption_names}
    for (name, _), flags in zip(variants, correct):
        per_severity[name].append(_rate(flags))
    per_corruption = {name: float(np.mean(accs)) for name, accs in per_severity.items()}
    return {"mean": float(np.mean(list(per_corruption.values()))), "per_corruption": per_corruption,
            "per_severity": per_severity, "severities": list(cfg.severities), "constants": CONSTANTS}


# ----------------------------------------------------------------------------------------------- report
class SetInputs:
    """One evaluation set's fixed subset, on the device, with its label-space classifier."""

    def __init__(self, strategy: Strategy, data: TensorData, label_space: list[int], cfg: RobustnessConfig,
                 device: torch.device, seed: int) -> None:
        index = subset_indices(len(data), cfg.subset_size, seed)
        self.seed = seed
        self.label_space = tuple(sorted(label_space))
        self.model = LabelSpaceClassifier(strategy, label_space).to(device)
        self.images = data.images[index]
        self.x = to_pixels(self.images, device)
        self.y = self.model.targets(data.labels[index]).to(device)


def evaluate_set(inputs: SetInputs, cfg: RobustnessConfig, device: torch.device,
                 store: FeatureStore | None = None) -> dict[str, Any]:
    """Clean, FGSM/PGD and corruption accuracy of one evaluation set (the strategy must be in `evaluating`)."""
    model, x, y, seed = inputs.model, inputs.x, inputs.y, inputs.seed
    clean = _correct(model, x, y, cfg.batch_size)
    out: dict[str, Any] = {"subset_size": int(len(y)), "clean": _rate(clean)}
    timing: dict[str, float] = {}
    start = time.perf_counter()
    out.update(attack_accuracies(model, x, y, clean, cfg, seed))
    timing["fgsm_pgd"] = time.perf_counter() - start
    if cfg.corruptions and len(y):
        start = time.perf_counter()
        out["corruptions"] = corruption_accuracies(model, inputs.images, y, cfg, _seed(seed, "corruptions"), device,
                                                   store)
        timing["corruptions"] = time.perf_counter() - start
    out["seconds"] = timing
    return out


def evaluate_sets(sets: dict[str, SetInputs], cfg: RobustnessConfig, device: torch.device,
                  store: FeatureStore | None = None, every_image: bool = False
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """`evaluate_set` of every set, and the seconds of each part. Sets sharing a label space (every set of a
    class- or domain-incremental stream after its last task) share a classifier and are attacked together by
    `robust_only_attacks`: the same numbers, fewer images attacked. A strategy whose prediction reads other images
    of its batch (batch-wise prompt voting) keeps `evaluate_set`'s batches, set by set, every image attacked;
    `every_image` asks for that path for any strategy (the reference of tests and `bench.perf`)."""
    if not sets:
        return {}, {}
    strategy = next(iter(sets.values())).model.strategy
    if every_image or strategy.flags.batchwise_inference:
        per_set = {name: evaluate_set(inputs, cfg, device, store) for name, inputs in sets.items()}
        return per_set, {part: sum(r["seconds"].get(part, 0.0) for r in per_set.values())
                         for part in ("fgsm_pgd", "corruptions")}
    per_set: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, inputs in sets.items():
        groups.setdefault(inputs.label_space, []).append(name)
    start = time.perf_counter()
    for names in groups.values():
        members = [sets[n] for n in names]
        model = members[0].model
        clean = _correct_rows(model, torch.cat([m.x for m in members]), torch.cat([m.y for m in members]),
                              cfg.batch_size).split([len(m.y) for m in members])
        attacks = robust_only_attacks(model, [(m.x, m.y, c, m.seed) for m, c in zip(members, clean)], cfg)
        for name, member, flags, attack in zip(names, members, clean, attacks):
            per_set[name] = {"subset_size": int(len(member.y)), "clean": _rate(flags), **attack}
    seconds = {"fgsm_pgd": time.perf_counter() - start, "corruptions": 0.0}
    for name, inputs in sets.items():
        if cfg.corruptions and len(inputs.y):
            start = time.perf_counter()
            per_set[name]["corruptions"] = corruption_accuracies(inputs.model, inputs.images, inputs.y, cfg,
                                                                 _seed(inputs.seed, "corruptions"), device, store)
            per_set[name]["seconds"] = {"corruptions": time.perf_counter() - start}
            seconds["corruptions"] += per_set[name]["seconds"]["corruptions"]
    return {name: per_set[name] for name in sets}, seconds


def autoattack_sets(sets: dict[str, SetInputs], cfg: RobustnessConfig, seed: int) -> dict[str, dict[str, Any]]:
    """AutoAttack on the first `autoattack_subset_size` images of every set, one run per distinct label space
    (evaluation sets sharing a classifier are pooled); returns each set's accuracy."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, inputs in sets.items():
        if len(inputs.y):
            groups.setdefault(inputs.label_space, []).append(name)
    out: dict[str, dict[str, Any]] = {}
    for space, names in groups.items():
        k = cfg.autoattack_subset_size
        x = torch.cat([sets[n].x[:k] for n in names])
        y = torch.cat([sets[n].y[:k] for n in names])
        robust, run = autoattack_robust(sets[names[0]].model, x, y, cfg, _seed(seed, "autoattack", *space))
        for name, flags in zip(names, robust.split([len(sets[n].y[:k]) for n in names])):
            out[name] = {**run, "acc": _rate(flags), "n": int(len(flags))}
    return out


def _weighted(parts: list[tuple[float, int]]) -> float | None:
    total = sum(n for _, n in parts)
    return sum(v * n for v, n in parts) / total if total else None


def combine(per_set: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Top-level numbers: the per-set numbers averaged with the subset sizes as weights."""
    sets = [s for s in per_set.values() if s["subset_size"]]
    out: dict[str, Any] = {"subset_size": sum(s["subset_size"] for s in sets),
                           "clean": _weighted([(s["clean"], s["subset_size"]) for s in sets])}
    for attack in ("fgsm", "pgd"):
        if sets and attack in sets[0]:
            out[attack] = {k: _weighted([(s[attack][k], s["subset_size"]) for s in sets]) for k in sets[0][attack]}
    if sets and "autoattack" in sets[0]:
        runs = [s["autoattack"] for s in sets]
        out["autoattack"] = {"eps": runs[0]["eps"], "acc": _weighted([(r["acc"], r["n"]) for r in runs]),
                             "n": sum(r["n"] for r in runs), "version": runs[0]["version"]}
    if sets and "corruptions" in sets[0]:
        runs = [(s["corruptions"], s["subset_size"]) for s in sets]
        names = list(runs[0][0]["per_corruption"])
        per = {name: _weighted([(c["per_corruption"][name], n) for c, n in runs]) for name in names}
        out["corruptions"] = {"mean": float(np.mean(list(per.values()))), "per_corruption": per,
                              "severities": runs[0][0]["severities"], "constants": CONSTANTS}
    return out


def robustness_report(strategy: Strategy, scenario: Any, settings: dict[str, Any] | None,
                      device: torch.device, store: FeatureStore | None | str = "default",
                      every_image: bool = False) -> dict[str, Any]:
    """The `robustness` entry of a cell record, for a trained strategy on its scenario's evaluation sets.
    `store`: where shareable frozen features of the corrupted images are cached ("default": the suite-wide one).
    `every_image`: attack every image set by set (`evaluate_sets`), for comparisons; the numbers are the same."""
    cfg = RobustnessConfig.from_dict(settings)
    store = default_feature_store() if store == "default" else store
    seen = sorted({c for step in scenario.steps for c in step.classes})
    strategy.to(device)
    start = time.perf_counter()
    per_set: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    with evaluating(strategy):
        sets = {e.name: SetInputs(strategy, e.data, label_space_for(e, seen), cfg, device,
                                  _seed(scenario.seed, "robustness", e.name)) for e in scenario.eval_sets}
        per_set, parts = evaluate_sets(sets, cfg, device, store, every_image)
        seconds.update(parts)
        if cfg.autoattack:
            aa_start = time.perf_counter()
            for name, result in autoattack_sets(sets, cfg, _seed(scenario.seed, "robustness")).items():
                per_set[name]["autoattack"] = result
            seconds["autoattack"] = time.perf_counter() - aa_start
    for name, result in per_set.items():
        log.info("robustness %s: %s", name, {k: v for k, v in result.items() if k in ("clean", "pgd", "autoattack")})
    record = combine(per_set)
    seconds["total"] = time.perf_counter() - start
    record.update({"settings": cfg.model_dump(mode="json"), "per_eval_set": per_set, "seconds": seconds})
    return record


def robustness_hook() -> Callable[..., dict[str, Any]]:
    """The `after_training` callable for `bench.run.runner.run_cell` / `run_grid`."""
    return robustness_report


def pregenerate_corrupted_sets(cells: Sequence[Any]) -> dict[str, float]:
    """Write to the disk cache, before any cell runs, the corrupted subsets the given cells' robustness blocks
    will read, so no cell pays for sets that every cell of the scenario shares (the longest cell, which starts
    first, paid 20-27 s of each CoCa cell for them; issue 23). Returns {"seconds", "sets"}: the time is reported
    apart from the cells'. Scenarios whose images depend on the backbone (on-disk sources decoded at its input
    size) are left to their cells."""
    from scenarios.catalog import build_scenario

    groups: dict[str, tuple[Any, RobustnessConfig]] = {}
    for cell in cells:
        if cell.robustness and not cell.strategy.startswith("seq2seq_"):  # multimodal cells corrupt their own
            key = json.dumps([cell.scenario, cell.seed, cell.scenario_overrides, cell.robustness], sort_keys=True,
                             default=str)
            groups.setdefault(key, (cell, RobustnessConfig.from_dict(cell.robustness)))
    start, made = time.perf_counter(), 0
    for cell, cfg in groups.values():
        if not cfg.corruptions:
            continue
        scenario = build_scenario(cell.scenario, cell.seed, **cell.scenario_overrides)
        if getattr(scenario, "preprocess", None) is not None:
            continue
        variants = [(name, severity) for name in cfg.corruption_names for severity in cfg.severities]
        for e in scenario.eval_sets:  # the subsets SetInputs draws, corrupted as corruption_accuracies does
            seed = _seed(scenario.seed, "robustness", e.name)
            index = subset_indices(len(e.data), cfg.subset_size, seed)
            if len(index):
                hwc = e.data.images[index].permute(0, 2, 3, 1).contiguous().numpy()
                _corrupted_stack(hwc, variants, _seed(seed, "corruptions"))
                made += 1
    _CORRUPTED.clear()  # on disk now; this process computes no cell
    return {"seconds": time.perf_counter() - start, "sets": made}
