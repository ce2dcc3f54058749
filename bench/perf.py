"""`python -m bench.perf`: where the time goes, as ratios measured side by side in one run (a benchmark script,
never a timed test). Each row runs the thing and its reference in the same process, one after the other, so that
load on the machine hits both alike; on a shared machine repeat with `--repeats`.

Rows:
- frozen passes per image per suite: images through a frozen function, per distinct (backbone, function, image
  set) image, for a small suite of strategies that share frozen features: with the suite-wide disk cache
  (bench/train/feature_cache.py) against without it. The limit is 1.
- evaluation passes actual / needed: images scored after training steps, against those a metric can read (a
  class-incremental task is not scored before it is trained); the untrained start row (initial_accuracy) is
  counted apart. "Every set after every step" is the pre-cache harness.
- harness overhead: `run_stream`'s training time against a bare PyTorch loop doing the same batches, optimiser
  steps and loss (VPT-deep: every batch runs the backbone).
- serial vs worker pool: the same default-suite cells through `run`'s executors, one after another in one process
  against the pool of two worker processes (one torch thread each), in cells per second, with and without the
  pool's one-time start.
- robustness seconds per cell: the default suite's robustness block with the common corruptions on, on one trained
  cell, with the corrupted sets computed (cold disk cache) against read back (warm).
- robustness, pooled vs every image: the default suite's robustness block on trained cells (a fine-tuned ViT, L2P,
  CoOp on base-to-new), as cells run it (sets sharing a label space attacked together, each budget only on the
  images still robust, only the label space scored) against every image attacked set by set, in CPU seconds,
  alternating, the corrupted sets read from a warm cache; and whether the two records are equal (they must be).
- subnormal step ratio: a training step (linear layers, forward, backward, SGD) on inputs scaled into float32's
  subnormal range, against the same step on normal inputs; with flush-to-zero (as every cell runs,
  `bench.core.device.flush_denormals`) and without. Near 1 with it; Intel cores pay many times over without.
- leaderboard start-up: `promptshift leaderboard` rebuilding the tables from a few records, in a fresh process,
  against `promptshift --help` in a fresh process (what importing the reporting code costs); and `promptshift plan`
  of the default suite against the same `--help` (the listing cached first, as after any earlier command).
- suite rebuild: `promptshift leaderboard` over a suite's records (`--results`, default `results/`: the default
  suite's after `make bench`), fresh processes: the first build with an empty cache (every figure drawn), then
  rebuilds that read the unchanged scenario sections back, against `promptshift --help`.
- our L2P vs avalanche-lib's `LearningToPrompt` on the same stream, weights and settings: seconds per epoch and
  final accuracy over 3 seeds, ours as it is, without clipping, and with avalanche's two differences (no clipping,
  the class token's position embedding on the prompt slots) (avalanche's class mask needs the fix issue 14
  describes).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _scenario(kind: str = "class_incremental", seed: int = 0, **overrides: Any):
    from scenarios.catalog import build_scenario

    from bench.contract.tiny import TINY_SCENARIOS

    name, base = TINY_SCENARIOS[kind]
    return build_scenario(name, seed, **{**base, **overrides})


def _strategy(name: str, scenario, backbone: str, seed: int = 0, **config: Any):
    from bench.core.strategy import STRATEGIES, build_strategy
    from bench.models.backbones import BACKBONES, create_backbone

    torch.manual_seed(seed)
    model = create_backbone(backbone)
    module = model.visual if (BACKBONES.get(backbone).family == "clip" and not STRATEGIES.get(name).needs_text) \
        else model
    torch.manual_seed(seed)
    return build_strategy(name, module, scenario.info(), config)


# ------------------------------------------------------------------------------------------ frozen passes
def frozen_passes(backbone: str, seeds: tuple[int, ...]) -> dict[str, float]:
    """Images through frozen functions per distinct needed image, with and without the disk cache."""
    from bench.train.feature_cache import FeatureStore, trusted_frozen_key
    from bench.train.harness import run_stream

    names = ("linear_probe", "mlp_k", "l2p", "partial_k")
    out = {}
    for label, use_store in (("without cache", False), ("with cache", True)):
        with tempfile.TemporaryDirectory() as root:
            store = FeatureStore(root) if use_store else None
            computed = 0
            needed: dict[tuple, int] = {}
            for seed in seeds:
                scenario = _scenario(seed=seed)
                for name in names:
                    strategy = _strategy(name, scenario, backbone, seed, epochs=1)
                    original = strategy.frozen_inputs

                    def counting(x: torch.Tensor, original=original) -> torch.Tensor:
                        nonlocal computed
                        computed += int(x.shape[0])
                        return original(x)

                    strategy.frozen_inputs = counting
                    key = trusted_frozen_key(strategy)
                    for step in scenario.steps:
                        needed[(seed, key, "train", id(step))] = len(step.data)
                    for eval_set in scenario.eval_sets:
                        needed[(seed, key, eval_set.name)] = len(eval_set.data)
                    run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), seed,
                               show_progress=False, feature_store=store)
            out[label] = computed / sum(needed.values())
    return out


# --------------------------------------------------------------------------------------- evaluation passes
def evaluation_passes(backbone: str) -> dict[str, float]:
    """Images scored by `evaluate` per image a metric needs (after each step, sets whose classes were seen)."""
    from bench.train.harness import run_stream

    scenario = _scenario(num_tasks=4, num_classes=16)
    strategy = _strategy("linear_probe", scenario, backbone, epochs=1)
    scored = {"n": 0}
    original = strategy.forward

    def counting(x, cached=None):
        if not strategy.training:
            scored["n"] += int((cached if cached is not None else x).shape[0])
        return original(x, cached)

    strategy.forward = counting
    result = run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, show_progress=False)
    sizes = [len(e.data) for e in scenario.eval_sets]
    steps = len(scenario.steps)
    initial = sum(sizes)
    needed = sum(size for i in range(steps) for j, size in enumerate(sizes) if j <= i)
    every = steps * sum(sizes)
    assert sum(v is None for row in result.acc_matrix for v in row) == steps * (steps - 1) // 2
    return {"now (after steps)": (scored["n"] - initial) / needed, "every set after every step": every / needed,
            "initial row (extra, for FWT)": initial / needed}


# ------------------------------------------------------------------------------------------ harness overhead
def bare_loop(strategy, steps, seed: int) -> float:
    """The training the harness does, written as a plain PyTorch loop: same batches, optimiser, schedule, loss."""
    import math

    from bench.core.data import TaskContext
    from bench.core.strategy import freeze_all_but_trainable
    from bench.train.harness import build_optimizer, index_batches, make_batch, warmup_cosine

    device = torch.device("cpu")
    params = freeze_all_but_trainable(strategy)
    generator = torch.Generator().manual_seed(seed)
    cfg = strategy.cfg
    seen: list[int] = []
    start = time.perf_counter()
    for index, step in enumerate(steps):
        seen = sorted(set(seen) | set(step.classes))
        ctx = TaskContext(index, len(steps), list(step.classes), seen, step.domain, step.data)
        optimizer = build_optimizer(strategy, params)
        per_epoch = math.ceil(len(step.data) / cfg.batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(per_epoch * cfg.epochs, 0))
        strategy.train()
        for _ in range(cfg.epochs):
            for batch_index in index_batches(len(step.data), cfg.batch_size, generator):
                loss = strategy.training_loss(make_batch(strategy, step.data, batch_index, device), ctx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
    return time.perf_counter() - start


def harness_overhead(backbone: str, repeats: int) -> dict[str, float]:
    from bench.train.harness import run_stream

    scenario = _scenario()
    ours, bare = [], []
    for _ in range(repeats):
        strategy = _strategy("vpt_deep", scenario, backbone, epochs=2)
        result = run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0,
                            show_progress=False)
        ours.append(result.train_seconds)
        bare.append(bare_loop(_strategy("vpt_deep", scenario, backbone, epochs=2), scenario.steps, 0))
    return {"harness train s": min(ours), "bare loop s": min(bare), "ratio": min(ours) / min(bare)}


# ------------------------------------------------------------------------------------ avalanche-lib's L2P
def avalanche_l2p(scenario_name: str, epochs: int, seed: int = 0,
                  variants: dict[str, dict[str, Any]] | None = None) -> dict[str, float]:
    """Our L2P against avalanche-lib 0.6's `LearningToPrompt` on the same stream, the same ViT weights
    (vit_glyph_tiny loaded into avalanche's prompt ViT) and settings (M=10, Lp=5, N=5, lambda=0.1, Adam, batch
    64, constant rate): seconds per epoch and final accuracy (mean over tasks, all classes). Avalanche's own pieces are patched
    only where they cannot run this: its class mask reads a set that numpy cannot difference (NaN loss), its head
    is hard-coded to width 768, and its ViT takes normalised pixels. `seed` draws the class order and both models'
    initialisations; `variants` maps a label to overrides of our L2P's config, each run on the same stream."""
    import numpy as np
    import avalanche.models.vit as avalanche_vit
    from avalanche.models.timm_vit import ViTWithPrompt, checkpoint_filter_fn
    from avalanche.training import LearningToPrompt

    from bench.models.backbones import GLYPH_VIT_ARCH, create_backbone
    from bench.train.harness import run_stream
    from scenarios.catalog import build_scenario

    def vit_glyph_tiny(pretrained: bool = False, **kwargs: Any):
        # avalanche's own builder reads timm's pretrained config as a dict, which current timm no longer is
        return ViTWithPrompt(**GLYPH_VIT_ARCH, **kwargs)

    avalanche_vit.vit_glyph_tiny = vit_glyph_tiny  # its create_model looks names up in that module

    class FixedL2P(LearningToPrompt):
        def forward(self):
            x = (self.mb_x.float() / 255.0 - 0.5) / 0.5  # our backbone's preprocessing (mean = std = 0.5)
            with torch.no_grad():
                cls_features = self.original_vit(x)["pre_logits"]
            self.res = self.model(x=x, task_id=-1, cls_features=cls_features, train=False)  # no task labels
            logits = self.res["logits"]
            if self.is_training:  # the fix: the experience's classes as a list
                seen = sorted(self.experience.classes_in_this_experience)
                not_mask = torch.tensor(np.setdiff1d(np.arange(self.num_classes), seen), dtype=torch.int64)
                logits = logits.index_fill(dim=1, index=not_mask, value=float("-inf"))
            return logits

    scenario = build_scenario(scenario_name, seed)
    # A constant rate, as avalanche's (and the official code) trains: with our generic default (cosine decay within
    # each task) ours ended at 41% against its 54%; at the same constant rate 55% (2026-11-30, one seed).
    same = dict(epochs=epochs, lr=0.0075, batch_size=64, schedule="constant")
    out: dict[str, float] = {}
    n_tasks = len(scenario.steps)
    for label, overrides in (variants or {"ours": {}}).items():
        ours = _strategy("l2p", scenario, "vit_glyph_tiny", seed=seed, **{**same, **overrides})
        result = run_stream(ours, scenario.steps, scenario.eval_sets, torch.device("cpu"), seed, show_progress=False)
        out[f"{label} s/epoch"] = result.train_seconds / (n_tasks * epochs)
        out[f"{label} final acc"] = float(np.mean(result.acc_matrix[-1]))

    torch.manual_seed(seed)
    theirs = FixedL2P(model_name="vit_glyph_tiny", pretrained=False, num_classes=len(scenario.class_names),
                      pool_size=10, prompt_length=5, top_k=5, sim_coefficient=0.1, lr=0.0075, train_mb_size=64,
                      eval_mb_size=256, train_epochs=epochs, device="cpu", evaluator=None)
    weights = create_backbone("vit_glyph_tiny").encoder.state_dict()
    for model in (theirs.model, theirs.original_vit):
        # its own loader: the prompt slots get the class token's position embedding, as in the PyTorch port
        missing, unexpected = model.load_state_dict(checkpoint_filter_fn(weights, model), strict=False)
        assert not unexpected and all(k.startswith(("prompt", "head")) for k in missing), (missing, unexpected)
    theirs.model.head = torch.nn.Linear(GLYPH_VIT_ARCH["embed_dim"], len(scenario.class_names))
    for name, param in theirs.model.named_parameters():
        param.requires_grad = not name.startswith(("blocks", "patch_embed", "cls_token", "norm", "pos_embed"))
    start = time.perf_counter()
    for experience in scenario.benchmark.train_stream:
        theirs.train(experience)
    their_seconds = time.perf_counter() - start
    theirs.model.eval()
    correct = []
    with torch.no_grad():
        for eval_set in scenario.eval_sets:
            x = (eval_set.data.images.float() / 255.0 - 0.5) / 0.5
            cls = theirs.original_vit(x)["pre_logits"]
            pred = theirs.model(x=x, cls_features=cls)["logits"].argmax(-1)
            correct.append(float((pred == eval_set.data.labels).float().mean()))
    out["avalanche s/epoch"] = their_seconds / (n_tasks * epochs)
    out["avalanche final acc"] = float(np.mean(correct))
    return out


# What each of our variants changes against avalanche-lib's L2P (found by this comparison, 2026-12-07):
# avalanche clips no gradient (our L2P's default clips at 1.0, as both official codes) and adds the class token's
# position embedding to the prompt slots (as the PyTorch port; the JAX code adds none).
L2P_VARIANTS: dict[str, dict[str, Any]] = {
    "ours": {},
    "ours no clip": {"grad_clip": 0.0},
    "ours as avalanche": {"grad_clip": 0.0, "prompt_pos": "cls"},
}


def avalanche_l2p_seeds(scenario_name: str, epochs: int, seeds: int) -> dict[str, float]:
    """`avalanche_l2p` over seeds 0..seeds-1 with every variant of `L2P_VARIANTS`: mean and std (ddof 1) of the
    final accuracy (in %) and the mean seconds per epoch of each."""
    import numpy as np

    runs = [avalanche_l2p(scenario_name, epochs, seed, L2P_VARIANTS) for seed in range(seeds)]
    out: dict[str, float] = {}
    for key in runs[0]:
        values = np.array([run[key] for run in runs])
        if key.endswith("final acc"):
            out[f"{key} mean %"] = 100 * values.mean()
            out[f"{key} std %"] = 100 * values.std(ddof=1) if len(values) > 1 else 0.0
            for seed, value in enumerate(values):
                out[f"{key} seed {seed} %"] = 100 * value
        else:
            out[key] = values.mean()
    return out


# ------------------------------------------------------------------------------------------- serial vs pool
def serial_vs_pool(backbone: str, seeds: int = 4) -> dict[str, float]:
    """Cells per second through the executors `run` uses: `--workers 0` (one cell after another in this process)
    against the worker pool (`PoolExecutor`: a fork server, a fresh process per cell, one thread each), on the same
    default-suite cells (vpt_shallow and lora on ci5_glyphs, `seeds` seeds each, no robustness), each in an empty
    results folder. The pool's one-time start (its fork server importing torch and the libraries, measured on a
    first one-cell run) is counted in "speed-up" and left out of "speed-up after the pool's start"."""
    import contextlib
    import importlib
    import io

    from bench.run.executors import PRELOAD, PoolExecutor, SerialExecutor
    from bench.run.runner import CellConfig, run_grid
    from bench.run.suite import load_suite

    for module in PRELOAD:  # what the pool's fork server imports once: imported here too before the clock starts
        try:
            importlib.import_module(module)
        except ImportError:
            pass

    suite = load_suite("default")
    configs = {entry.name: dict(entry.config) for entry in suite.strategies}
    cells = [CellConfig(scenario="ci5_glyphs", strategy=name, backbone=backbone, seed=seed,
                        strategy_config=configs[name])
             for seed in range(seeds) for name in ("vpt_shallow", "lora")]
    timings: dict[str, float] = {}

    def timed(label: str, executor: Any, part: list[CellConfig]) -> None:
        begin = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # run_grid's line per cell is not this table's
            records = run_grid(part, Path(tmp) / label, "cpu", show_progress=False, executor=executor)
        timings[label] = time.perf_counter() - begin
        assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
        timings[f"{label} cells"] = sum(r["timing"]["total_seconds"] for r in records)

    with tempfile.TemporaryDirectory() as tmp:
        timed("serial", SerialExecutor(), cells)
        timed("first", PoolExecutor(2, 1), cells[:1])  # starts the fork server: the pool's one-time cost
        timed("pool", PoolExecutor(2, 1), cells)  # the server is running now
    start = max(0.0, timings["first"] - timings["first cells"])
    return {"serial cells/s": len(cells) / timings["serial"], "pool cells/s": len(cells) / timings["pool"],
            "speed-up": timings["serial"] / (timings["pool"] + start),
            "speed-up after the pool's start": timings["serial"] / timings["pool"],
            "pool start s": start}


# ------------------------------------------------------------------------------------------------ subnormals
def _step_seconds(inputs: torch.Tensor, steps: int) -> float:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(inputs.shape[1], 256), torch.nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    target = torch.zeros(len(inputs), dtype=torch.long)
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(inputs), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def subnormal_steps(steps: int = 40) -> dict[str, float]:
    """Seconds of a training step on subnormal inputs / on normal ones, without and with flush-to-zero. Leaves
    flush-to-zero on (as in every process that computes a cell)."""
    from bench.core.device import flush_denormals

    normal = torch.randn(256, 512, generator=torch.Generator().manual_seed(0))
    subnormal = normal * 1e-39  # float32's smallest normal is 1.2e-38: every entry is subnormal
    out = {}
    for label, flush in (("ratio without flush-to-zero", False), ("ratio with flush-to-zero", True)):
        if flush:
            flush_denormals()
        else:
            torch.set_flush_denormal(False)
        _step_seconds(normal, 2)  # warm-up
        out[label] = _step_seconds(subnormal, steps) / _step_seconds(normal, steps)
    return out


# ------------------------------------------------------------------------------------ leaderboard start-up
def leaderboard_startup(repeats: int = 3) -> dict[str, float]:
    """A fresh `promptshift leaderboard` on a few tiny records vs a fresh `promptshift --help` (best of
    `repeats`), each a new Python process, as a user runs them."""
    import shutil
    import subprocess

    from bench.run.runner import CellConfig, run_grid

    tiny = {"num_tasks": 2, "num_classes": 4, "train_per_font": 1, "test_per_font": 1}
    cells = [CellConfig("ci5_glyphs", "linear_probe", "vit_test_micro", seed, {"epochs": 1}, tiny) for seed in (0, 1)]
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1",
               "PROMPTSHIFT_CACHE": str(Path(root) / "cache")}
        with contextlib.redirect_stdout(io.StringIO()):  # the cells' lines would split this table
            run_grid(cells, Path(root) / "results", "cpu", False)

        def fresh(*args: str) -> float:
            best = math.inf
            for _ in range(repeats):
                shutil.rmtree(Path(root) / "boards", ignore_errors=True)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, cwd=root, check=True,
                               capture_output=True)
                best = min(best, time.perf_counter() - start)
            return best

        helped = fresh("--help")
        board = fresh("leaderboard", "--results", "results", "--leaderboards", "boards")
        plan = ("plan", "--suite", "default", "--results", "results", "--leaderboards", "boards")
        subprocess.run([sys.executable, "-m", "bench.cli", "list"], env=env, cwd=root, check=True,
                       capture_output=True)  # caches the listing (imports every strategy once), untimed
        planned = fresh(*plan)
    return {"--help s": helped, "leaderboard s": board, "ratio": board / helped, "plan s": planned,
            "plan ratio": planned / helped}


def suite_rebuild(results: str, repeats: int = 3) -> dict[str, float]:
    """`promptshift leaderboard` over a suite's records (e.g. the default suite's, `results/` after `make bench`),
    each a fresh process as a user runs it: the first build with an empty cache draws every figure, the rebuilds
    after it (best of `repeats`) read the unchanged scenario sections back (bench/report/section_cache.py); both
    against a fresh `promptshift --help`. Empty when `results` holds no records."""
    import subprocess

    folder = Path(results)
    records = len(list(folder.glob("*.json"))) if folder.is_dir() else 0
    if not records:
        return {}
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1",
               "PROMPTSHIFT_CACHE": str(Path(root) / "cache")}

        def once(*args: str) -> float:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, cwd=root, check=True,
                           capture_output=True)
            return time.perf_counter() - start

        board = ("leaderboard", "--results", str(folder.resolve()), "--leaderboards", str(Path(root) / "boards"),
                 "--force")
        helped = min(once("--help") for _ in range(repeats))
        first = once(*board)
        rebuild = min(once(*board) for _ in range(repeats))
    return {"records": float(records), "--help s": helped, "first build s": first, "rebuild s": rebuild,
            "rebuild ratio": rebuild / helped}


# ---------------------------------------------------------------------------------------------- robustness
def robustness_seconds(backbone: str) -> dict[str, float]:
    """The default suite's robustness block with the common corruptions on (the default suite runs attacks only
    since v7; the robustness suite corrupts) on one trained cell: corrupted sets computed vs read from disk."""
    import bench.eval.robustness as robustness
    from bench.run.suite import load_suite
    from bench.train.harness import run_stream

    settings = {**load_suite("default").robustness, "corruptions": True}  # the disk cache holds corrupted sets only
    scenario = _scenario()
    strategy = _strategy("linear_probe", scenario, backbone, epochs=1)
    run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, show_progress=False)
    out = {}
    previous = os.environ.get("PROMPTSHIFT_CACHE")
    with tempfile.TemporaryDirectory() as root:
        os.environ["PROMPTSHIFT_CACHE"] = root
        try:
            for label in ("cold cache s", "warm cache s"):
                robustness._CORRUPTED.clear()  # as a new process would start
                start = time.perf_counter()
                robustness.robustness_report(strategy, scenario, settings, torch.device("cpu"))
                out[label] = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("PROMPTSHIFT_CACHE", None)
            else:
                os.environ["PROMPTSHIFT_CACHE"] = previous
    out["ratio"] = out["warm cache s"] / out["cold cache s"]
    return out


def robustness_pooled(backbone: str, repeats: int) -> dict[str, float]:
    """CPU seconds of the default suite's robustness block, pooled and robust-only (as cells run it) against every
    image attacked set by set, on a few trained strategies; `same` is 1.0 when every pair of records is equal."""
    import json

    import bench.eval.robustness as robustness
    from bench.run.suite import load_suite
    from bench.train.harness import run_stream

    settings = load_suite("default").robustness
    cpu = torch.device("cpu")
    totals = {"every image s": 0.0, "pooled s": 0.0}
    same = True
    for name, kind, model_name, config in (("full_finetune", "class_incremental", backbone, {"epochs": 2}),
                                           ("l2p", "class_incremental", backbone, {"epochs": 2}),
                                           ("coop", "base_to_new", "clip_glyph_tiny", {"epochs": 2})):
        scenario = _scenario(kind)
        strategy = _strategy(name, scenario, model_name, **config)
        run_stream(strategy, scenario.steps, scenario.eval_sets, cpu, 0, show_progress=False)
        robustness.robustness_report(strategy, scenario, settings, cpu)  # corrupted sets and features cached
        best = {label: math.inf for label in totals}
        records = {}
        for _ in range(max(1, repeats)):
            for label, every in (("every image s", True), ("pooled s", False)):
                start = time.process_time()
                record = robustness.robustness_report(strategy, scenario, settings, cpu, every_image=every)
                best[label] = min(best[label], time.process_time() - start)
                record.pop("seconds")
                for entry in record["per_eval_set"].values():
                    entry.pop("seconds", None)
                records[label] = json.dumps(record, sort_keys=True)
        same &= records["every image s"] == records["pooled s"]
        for label in totals:
            totals[label] += best[label]
    return {**totals, "ratio": totals["pooled s"] / totals["every image s"], "same": float(same)}


# ----------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="vit_glyph_tiny", help="a ViT backbone (default: vit_glyph_tiny)")
    parser.add_argument("--repeats", type=int, default=1, help="repeat the timed rows, keep the fastest")
    parser.add_argument("--skip", default="", help="comma-separated rows to skip: frozen,eval,harness,avalanche,"
                                                   "procs,robustness,pooled,subnormal,startup,rebuild")
    parser.add_argument("--l2p-scenario", default="ci5_glyphs", help="the stream of the L2P comparison")
    parser.add_argument("--l2p-epochs", type=int, default=5, help="epochs per task in the L2P comparison (L2P's default)")
    parser.add_argument("--l2p-seeds", type=int, default=3, help="seeds of the L2P comparison (0..n-1)")
    parser.add_argument("--results", default="results", help="a suite's records for the rebuild row (default: "
                                                               "results/, where make bench writes; none: row skipped)")
    args = parser.parse_args(argv)
    from bench.core.device import flush_denormals

    flush_denormals()  # as in every process that computes a cell
    torch.set_num_threads(1)
    import strategies  # noqa: F401  (registers every strategy)

    skip = set(filter(None, args.skip.split(",")))
    rows = [("frozen", "frozen passes per needed image", lambda: frozen_passes(args.backbone, (0, 1))),
            ("eval", "evaluation passes / needed", lambda: evaluation_passes(args.backbone)),
            ("harness", "harness overhead (vpt_deep training)", lambda: harness_overhead(args.backbone, args.repeats)),
            ("avalanche", f"our L2P vs avalanche-lib's ({args.l2p_scenario}, {args.l2p_epochs} epochs, "
                          f"{args.l2p_seeds} seeds)",
             lambda: avalanche_l2p_seeds(args.l2p_scenario, args.l2p_epochs, args.l2p_seeds)),
            ("procs", "serial vs worker pool of 2 (8 default-suite cells: vpt_shallow, lora on ci5_glyphs)",
             lambda: serial_vs_pool(args.backbone)),
            ("robustness", "robustness seconds per cell (linear_probe)", lambda: robustness_seconds(args.backbone)),
            ("pooled", "robustness CPU s, pooled robust-only / every image per set (full_finetune, l2p, coop b2n)",
             lambda: robustness_pooled(args.backbone, args.repeats)),
            ("subnormal", "subnormal / normal inputs, seconds per training step", subnormal_steps),
            ("startup", "leaderboard rebuild (2 records), plan (default suite) / --help, fresh processes",
             leaderboard_startup),
            ("rebuild", f"leaderboard of the records in {args.results}/: first build, rebuild / --help, fresh "
                        "processes", lambda: suite_rebuild(args.results, max(3, args.repeats)))]
    print(f"# bench.perf  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.processor() or platform.machine()}  {os.cpu_count()} cores  "
          f"load {os.getloadavg()[0]:.1f}  torch {torch.__version__}, 1 thread  backbone {args.backbone}")
    print("| measure | values |\n|---|---|")
    for key, title, measure in rows:
        if key in skip:
            continue
        start = time.perf_counter()
        values = measure()
        text = ", ".join(f"{k} {v:.2f}" for k, v in values.items())
        print(f"| {title} | {text} ({time.perf_counter() - start:.0f} s) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
