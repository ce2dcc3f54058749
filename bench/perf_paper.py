"""`python -m bench.perf_paper`: the paper suites at their real scale, dry run. What a paper-suite cell costs,
measured a few steps at a time, and each suite projected to CPU-hours and (an estimate) GPU-hours.

For every strategy entry of `paper_vit_b16`, `paper_clip_b16` and `paper_coca_b32`, on the suites' real
architectures (timm ViT-B/16, open_clip CLIP ViT-B/16 and CoCa ViT-B/32) with random weights (`weights="none"`:
nothing is fetched; the cost does not depend on the weights) over miniature copies of the suites' data in their
real on-disk formats (`bench.contract.mini_data`: CIFAR-100 binaries, ImageNet-R and Office-Home JPEG folders, a
CoOp split JSON), each entry in a process of its own:

- builds the cell as the runner does (`bench.run.runner.prepare`) and runs its first task's start as the harness
  does (`before_task`, the training set, the frozen cache or on-the-fly augmentation);
- runs two training steps through the harness's own loop (`train_step_data`, the cell's optimizer, schedule and
  augmentation): one at batch 1 (the warm-up) and one at batch `--batch` (the recipe's when smaller), timed; it
  counts the FLOPs of both (`torch.utils.flop_counter.FlopCounterMode`, forward and backward), so a step's cost is
  a line in the batch size; for CLIP and CoCa on class-dependent scenarios also on a second miniature with twice the classes, so
  that a step's cost at the recipe's batch B and the data set's class count C is a fit a + b*B + c*C + d*B*C
  (CoOp's text tower runs over every class each step; CoCoOp's once per image and class);
- times and counts the frozen pass per image (for strategies that cache it) and evaluation per image (label space:
  every class of the stream, an upper bound for CoCa, whose scoring grows with the classes);
- records the peak memory: the worker's max RSS on CPU (model building included), `torch.cuda.max_memory_allocated`
  on CUDA.

The projection takes each cell of the suite (`bench.run.suite.expand`: strategies x scenarios x seeds), the real
data set sizes (`REAL_SIZES`, from the data sets' official splits), the recipe's epochs and batch, and the
miniature's task structure (share of training images per task, evaluated images per cell): steps per cell =
sum over tasks of epochs x ceil(images / batch). CPU-hours: measured seconds per step scaled by the FLOP ratio
(seconds proportional to FLOPs within a step), plus frozen passes and evaluation, on this CPU with one thread.
GPU-hours: the projected FLOPs over an ASSUMED sustained throughput (`--assumed-tflops`, default 30% of an H100
SXM's 989 bf16 dense TFLOP/s): an estimate, not a measurement. Not counted: JPEG decoding on a GPU machine
(DataLoader workers overlap it), RanPAC's ridge solve, the disk feature cache shared across cells (frozen passes
are counted per cell: an upper bound).

    OMP_NUM_THREADS=1 python -m bench.perf_paper                 # CPU: ~40 min on a shared 2-core machine
    python -m bench.perf_paper --device cuda --batch 16          # the GPU rows (scripts/device_check_real.py --paper)
    python -m bench.perf_paper --tiny                            # micro backbones, seconds: checks the script
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

SUITES = ("paper_vit_b16", "paper_clip_b16", "paper_coca_b32")
H100_BF16_DENSE_TFLOPS = 989.4  # NVIDIA H100 SXM datasheet, dense (no sparsity)
ASSUMED_UTILISATION = 0.30
TINY_BACKBONES = {"vit": "vit_test_micro", "clip": "clip_test_micro", "coca": "coca_test_micro"}

# Official split sizes (train images the scenario trains on, test images, classes). CoOp's data sets: its
# split_zhou_*.json test splits (CoOp, IJCV 2022, Table 7); base-to-new trains 16 shots of the first ceil(C/2)
# classes. ImageNet-R: 30,000 images, L2P/CODA-Prompt's 80/20 split. Office-Home: 15,588 images over four
# domains (Art 2,427, Clipart 4,365, Product 4,439, Real World 4,357); DAPL trains on the whole source domain with
# the whole target domain unlabelled and tests on the target domain.
COOP = {"imagenet": (1000, 50000), "caltech101": (100, 2465), "oxford_pets": (37, 3669),
        "stanford_cars": (196, 8041), "oxford_flowers": (102, 2463), "food101": (101, 30300),
        "fgvc_aircraft": (100, 3333), "sun397": (397, 19850), "dtd": (47, 1692), "eurosat": (10, 8100),
        "ucf101": (101, 3783)}
OFFICE_HOME = {"art": 2427, "clipart": 4365, "product": 4439, "real_world": 4357}


def real_sizes(scenario: str) -> tuple[int, int, int]:
    """(training images, test images, classes) of a paper scenario at its real size."""
    if scenario.startswith("split_cifar100"):
        return 50000, 10000, 100
    if scenario.startswith("imagenet_r"):
        return 24000, 6000, 200
    if scenario.startswith("coop_") and scenario.endswith("_b2n"):
        classes, test = COOP[scenario[len("coop_"):-len("_b2n")]]
        return 16 * math.ceil(classes / 2), test, classes
    if scenario.startswith("office_home_"):
        rest = scenario[len("office_home_"):]
        source = next(d for d in OFFICE_HOME if rest.startswith(d + "_"))
        return OFFICE_HOME[source], OFFICE_HOME[rest[len(source) + 1:]], 65
    raise KeyError(f"no real size known for scenario {scenario!r}")


def group(scenario: str) -> str:
    """Scenarios whose cells share a measurement: the same task structure and cost per step (CIFAR-100 and
    ImageNet-R are both 10 class-incremental tasks at 224 pixels)."""
    return "coop" if scenario.startswith("coop_") else "office_home" if scenario.startswith("office_home_") else "ci"


def stand_in(scenario: str) -> str:
    """The miniature scenario a measurement runs on: the same task structure and image path as `scenario`."""
    if scenario.startswith("coop_"):
        return "coop_oxford_pets_b2n"
    if scenario.startswith("office_home_"):
        return "office_home_art_clipart"
    if scenario.startswith("imagenet_r"):
        return "imagenet_r_10t"
    return "split_cifar100_10t"


def class_dependent(family: str, scenario: str) -> bool:
    """Whether a step's cost grows with the data set's classes and the miniature's differ from the real ones."""
    return family in ("clip", "coca") and (scenario.startswith("coop_") or scenario.startswith("office_home_"))


# ----------------------------------------------------------------------------------------- miniature data
def write_miniatures(root: Path, scale: int, image_size: int, per_class: int = 1) -> None:
    """Real-format miniatures; `scale` 1 or 2 multiplies the class count of the class-dependent sets,
    `per_class` the images per class (larger batches on a GPU need more images)."""
    from bench.contract import mini_data

    if scale == 1:  # class-independent costs: one size is enough
        mini_data.write_cifar100_binary(root, train_per_class=per_class, test_per_class=1)
        mini_data.write_imagenet_r(root, per_class=3 * per_class, size=image_size)
    mini_data.write_coop_pets(root, num_classes=4 * scale, train_per_class=4 * per_class, val_per_class=1,
                              test_per_class=1, size=image_size)
    mini_data.write_office_home(root, num_classes=2 * scale, per_class=4 * per_class, size=image_size)


# ------------------------------------------------------------------------------------------- measurement
class _GlobalOnly:
    """Stands in for FlopCounterMode's per-module tracker: only the total is read here, and the tracker's
    backward hooks assert on prompt tensors that require grad without a grad_fn (VPT's, torch 2.14)."""

    parents = {"Global"}

    def __enter__(self) -> "_GlobalOnly":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def flop_counter():
    """A `torch.utils.flop_counter.FlopCounterMode` counting the total only (forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    return counter


def _flops(fn) -> float:
    with flop_counter() as counter:
        fn()
    return float(counter.get_total_flops())


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One entry on one miniature: seconds and FLOPs per step, per frozen image and per evaluated image; the
    miniature's task structure; peak memory. Runs in its own process (`--measure`)."""
    import torch

    import strategies  # noqa: F401  (registers every strategy)
    from bench.core.data import TaskContext, label_space_for
    from bench.core.device import select_device
    from bench.core.strategy import freeze_all_but_trainable
    from bench.run.runner import CellConfig, prepare
    from bench.train.harness import (TrainAugment, evaluate, fill_cache, fresh, has_frozen_inputs, learnable,
                                     train_step_data)

    import gc

    gc.collect()  # in-process runs: the previous entry's model is gone before this one's peak is taken
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    os.environ["PROMPTSHIFT_DATA"] = spec["root"]
    device = select_device(spec["device"])
    cfg = CellConfig(scenario=spec["scenario"], strategy=spec["strategy"], backbone=spec["backbone"], seed=0,
                     strategy_config=spec["config"], scenario_overrides=spec["overrides"], weights="none",
                     label=spec["label"])
    started = time.perf_counter()
    scenario, _, strategy = prepare(cfg)
    build_seconds = time.perf_counter() - started
    recipe = strategy.cfg
    batch = max(1, min(spec["batch"], recipe.batch_size))
    strategy.cfg = dataclasses.replace(recipe, batch_size=batch, epochs=1, warmup_epochs=0)
    strategy.to(device)
    params = freeze_all_but_trainable(strategy)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step = scenario.steps[0]
    ctx = TaskContext(index=0, num_steps=len(scenario.steps), train_classes=list(step.classes),
                      seen_classes=sorted(step.classes), domain=step.domain, train_data=fresh(step.data),
                      unlabelled=fresh(step.unlabelled) if step.unlabelled is not None else None)
    strategy.before_task(ctx)
    data = strategy.adapt_train_set(ctx.train_data, ctx)
    augmenter = TrainAugment.for_strategy(strategy, 0)
    views = 1
    if augmenter is not None and augmenter.uses_views(strategy):
        views, augmenter = augmenter.views, None  # K cached views: K frozen passes per image, then cached steps
    cached = has_frozen_inputs(strategy) and augmenter is None
    batch = min(batch, len(data))
    n = batch
    train = data.subset(torch.arange(n))
    out: dict[str, Any] = {"recipe_batch": recipe.batch_size, "epochs": recipe.epochs, "batch": batch,
                           "views": views, "cached": cached, "build_seconds": build_seconds,
                           "classes": scenario.info().num_classes}
    frozen_seconds = frozen_flops = 0.0
    if cached:
        sync()
        start = time.perf_counter()
        fill_cache(strategy, data, device)  # the whole miniature task: after_task may read every image's features
        sync()
        frozen_seconds = (time.perf_counter() - start) / len(data)
        probe = fresh(data).subset(torch.arange(min(n, batch)))
        frozen_flops = _flops(lambda: fill_cache(strategy, probe, device)) / len(probe)
        if ctx.unlabelled is not None:
            fill_cache(strategy, ctx.unlabelled, device)
        train = data.subset(torch.arange(n))
    out.update(frozen_seconds_per_image=frozen_seconds, frozen_flops_per_image=frozen_flops)

    trains = bool(params) and recipe.epochs > 0 and strategy.trains_on(ctx) and not strategy.training_free
    step_seconds = step_flops_1 = step_flops_b = 0.0
    if trains:
        generator = torch.Generator().manual_seed(0)

        def run(part, size: int) -> None:
            strategy.cfg = dataclasses.replace(strategy.cfg, batch_size=size)
            train_step_data(strategy, part, ctx, device, generator, params, False, augmenter)

        # A step at batch 1 (FLOPs; also the warm-up: allocator, kernels, lazy buffers), then one at `batch`,
        # timed and counted together: the counter's dispatch costs microseconds per op against the seconds of
        # a ViT-B step's matmuls.
        step_flops_1 = _flops(lambda: run(train.subset(torch.arange(1)), 1))
        sync()
        with flop_counter() as counter:
            start = time.perf_counter()
            run(train.subset(torch.arange(batch)), batch)
            sync()
            step_seconds = time.perf_counter() - start
        step_flops_b = float(counter.get_total_flops())
    out.update(trains=trains, step_seconds=step_seconds, step_flops_1=step_flops_1, step_flops_b=step_flops_b)
    start = time.perf_counter()
    strategy.after_task(ctx)  # prototypes, RanPAC's ridge solve, ... at the miniature's size: not projected
    out["after_task_seconds"] = time.perf_counter() - start

    every_class = sorted({c for s in scenario.steps for c in s.classes})
    eval_set = scenario.eval_sets[0]
    probe = eval_set.data.subset(torch.arange(min(len(eval_set.data), max(2, batch))))
    space = label_space_for(eval_set, every_class)
    if cached:
        fill_cache(strategy, probe, device)
    strategy.eval()
    strategy.before_eval()  # once per evaluation pass (e.g. the class prompts' text features): not per image
    out["eval_flops_per_image"] = _flops(lambda: evaluate(strategy, probe, space, device,  # also the warm-up
                                                          batch_size=len(probe))) / len(probe)
    sync()
    start = time.perf_counter()
    evaluate(strategy, probe, space, device, batch_size=len(probe))
    sync()
    out["eval_seconds_per_image"] = (time.perf_counter() - start) / len(probe)
    strategy.after_eval()

    # the miniature's structure, scaled to the real sizes by the projection
    total_train = sum(len(s.data) for s in scenario.steps)
    out["train_shares"] = [len(s.data) / total_train for s in scenario.steps]
    total_eval = sum(len(e.data) for e in scenario.eval_sets)
    labels = [set(e.data.labels.unique().tolist()) for e in scenario.eval_sets]
    evaluated = sum(len(e.data) for e in scenario.eval_sets)  # the untrained start: every set
    seen: set[int] = set()
    for s in scenario.steps:
        seen |= set(s.classes)
        evaluated += sum(len(e.data) for e, lab in zip(scenario.eval_sets, labels)
                         if learnable(lab, label_space_for(e, sorted(seen))))
    out["eval_passes"] = evaluated / total_eval  # evaluated images per test image over the cell
    if device.type == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["memory_measure"] = "cuda max allocated"
    else:
        import resource

        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["memory_measure"] = "max RSS of the worker process"
    return out


# -------------------------------------------------------------------------------------------- projection
def fit_step_flops(points: dict[tuple[int, int], float], batch: int, classes: int) -> float:
    """FLOPs of a step at `batch` images and `classes` classes from measured points {(B, C): flops}: linear in B
    (one C) or bilinear a + bB + cC + dBC (two Cs), extrapolated."""
    bs = sorted({b for b, _ in points})
    cs = sorted({c for _, c in points})

    def along_b(c: int) -> float:
        if len(bs) == 1:
            return points[(bs[0], c)] * batch / bs[0]
        (b0, b1) = bs[0], bs[-1]
        f0, f1 = points[(b0, c)], points[(b1, c)]
        return f0 + (batch - b0) * (f1 - f0) / (b1 - b0)
    if len(cs) == 1:
        return along_b(cs[0])
    c0, c1 = cs[0], cs[-1]
    g0, g1 = along_b(c0), along_b(c1)
    return max(0.0, g0 + (classes - c0) * (g1 - g0) / (c1 - c0))


def fit_linear(points: dict[int, float], x: int) -> float:
    """A per-image cost measured at one or two class counts, at `x` classes (constant with one point)."""
    xs = sorted(points)
    if len(xs) == 1:
        return points[xs[0]]
    x0, x1 = xs[0], xs[-1]
    return max(0.0, points[x0] + (x - x0) * (points[x1] - points[x0]) / (x1 - x0))


@dataclasses.dataclass
class CellCost:
    steps: int
    flops: float
    cpu_seconds: float


def project_cell(m: dict[str, Any], scenario: str) -> CellCost:
    """One real cell's training steps, FLOPs and single-thread CPU seconds from the measurement(s) `m` of its
    entry (`m["points"]`: per miniature class count, the measurement there)."""
    train_real, test_real, classes = real_sizes(scenario)
    points = m["points"]
    ref = points[max(points)]  # the larger miniature: the timing reference
    steps = 0
    if ref["trains"]:
        steps = sum(ref["epochs"] * math.ceil(share * train_real / ref["recipe_batch"])
                    for share in ref["train_shares"])
    flop_points = {}
    for c, p in points.items():
        flop_points[(1, int(c))] = p["step_flops_1"]
        flop_points[(p["batch"], int(c))] = p["step_flops_b"]
    step_flops = fit_step_flops(flop_points, ref["recipe_batch"], classes) if ref["trains"] else 0.0
    step_seconds = (ref["step_seconds"] * step_flops / ref["step_flops_b"]) if ref["step_flops_b"] else 0.0
    frozen_images = (train_real * ref["views"] + test_real) if ref["cached"] else 0
    eval_images = ref["eval_passes"] * test_real
    eval_flops = fit_linear({int(c): p["eval_flops_per_image"] for c, p in points.items()}, classes)
    eval_seconds = fit_linear({int(c): p["eval_seconds_per_image"] for c, p in points.items()}, classes)
    flops = steps * step_flops + frozen_images * ref["frozen_flops_per_image"] + eval_images * eval_flops
    seconds = (steps * step_seconds + frozen_images * ref["frozen_seconds_per_image"]
               + eval_images * eval_seconds)
    return CellCost(steps, flops, seconds)


# ------------------------------------------------------------------------------------------------ driver
def entries(suite_names: list[str], tiny: bool) -> tuple[dict[str, list], dict[tuple, dict[str, Any]]]:
    """Every suite's cells, and one measurement spec per (suite, entry label, stand-in scenario)."""
    import strategies  # noqa: F401
    from bench.models.backbones import BACKBONES
    from bench.run.suite import expand, load_suite

    cells: dict[str, list] = {}
    specs: dict[tuple, dict[str, Any]] = {}
    for name in suite_names:
        suite = load_suite(name)
        cells[name], _ = expand(suite)
        for cell in cells[name]:
            label = cell.label or cell.strategy
            family = BACKBONES.get(cell.backbone).family
            key = (name, label, group(cell.scenario))
            if key in specs:
                continue
            scenario = stand_in(cell.scenario)
            overrides = {"shots": 4} if scenario.startswith("coop_") else {}
            specs[key] = {"suite": name, "label": label, "strategy": cell.strategy, "scenario": scenario,
                          "config": dict(cell.strategy_config), "overrides": overrides, "family": family,
                          "backbone": TINY_BACKBONES[family] if tiny else cell.backbone,
                          "real_backbone": cell.backbone, "scales": [1, 2] if class_dependent(family, scenario)
                          else [1]}
    return cells, specs


def run_measure(spec: dict[str, Any], timeout: float, in_process: bool = False) -> dict[str, Any]:
    """`measure(spec)` in a worker process of its own (its max RSS is the entry's), or here (`in_process`: on
    CUDA, where the peak is per entry anyway, and in tests)."""
    if in_process:
        try:
            return measure(spec)
        except Exception as error:  # noqa: BLE001 - one failing entry is reported, the others still run
            return {"error": f"{type(error).__name__}: {error}"}
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        done = subprocess.run([sys.executable, "-m", "bench.perf_paper", "--measure", json.dumps(spec)],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()
        return {"error": tail[-1] if tail else f"exit {done.returncode}"}
    return json.loads(lines[-1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated paper suites")
    parser.add_argument("--only", help="comma-separated entry labels to measure")
    parser.add_argument("--batch", type=int, default=2, help="measured batch (the recipe's when smaller)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--image-size", type=int, default=64, help="side of the miniatures' JPEGs")
    parser.add_argument("--per-class", type=int, default=1,
                        help="images per class in the miniatures (a task's images cap the measured batch)")
    parser.add_argument("--assumed-tflops", type=float, default=ASSUMED_UTILISATION * H100_BF16_DENSE_TFLOPS,
                        help="ASSUMED sustained training throughput for the GPU-hour estimate (default: 30%% of "
                             "an H100 SXM's 989 bf16 dense TFLOP/s)")
    parser.add_argument("--timeout", type=float, default=240,
                        help="seconds per entry (RanPAC's 10,000 x 10,000 eigendecomposition does not fit in it on "
                             "one CPU thread)")
    parser.add_argument("--out", default="results/perf_paper", help="folder for the CSV and markdown tables")
    parser.add_argument("--tiny", action="store_true", help="micro backbones: checks the script in seconds")
    parser.add_argument("--in-process", action="store_true",
                        help="measure every entry in this process (CUDA: the peak is reset per entry; on CPU the "
                             "max RSS then only grows, so the CPU table uses a process per entry)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the entries measured without error by an earlier run into the same --out")
    parser.add_argument("--tables-only", action="store_true",
                        help="measure nothing: the tables from the entries an earlier run logged into --out")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return 0

    cells, specs = entries([s for s in args.suites.split(",") if s], args.tiny)
    if args.only:
        wanted = set(args.only.split(","))
        specs = {k: v for k, v in specs.items() if k[1] in wanted}
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cpu" if args.device == "cpu" else "cuda"
    log = out / f"measurements_{tag}.jsonl"  # one line per entry, so an interrupted run can be resumed (--reuse)
    measured: dict[tuple, dict[str, Any]] = {}
    if (args.reuse or args.tables_only) and log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if not entry["error"] and tuple(entry["key"]) in specs:
                entry["points"] = {int(c): p for c, p in entry["points"].items()}
                measured[tuple(entry["key"])] = entry
    elif log.exists():
        log.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for scale in (1, 2):
            roots[scale] = Path(tmp) / f"x{scale}"
            write_miniatures(roots[scale], scale, args.image_size, args.per_class)
        for key, spec in specs.items():
            if key in measured or args.tables_only:
                continue
            points, error = {}, None
            for scale in spec["scales"]:
                if spec["overrides"].get("shots"):  # CoOp's few-shot draw: every training image
                    spec = {**spec, "overrides": {**spec["overrides"], "shots": 4 * args.per_class}}
                result = run_measure({**spec, "root": str(roots[scale]), "device": args.device,
                                      "batch": args.batch}, args.timeout,
                                     args.in_process)
                if "error" in result:
                    error = result["error"]
                    break
                points[result["classes"]] = result
            measured[key] = {**spec, "points": points, "error": error}
            with open(log, "a") as handle:
                handle.write(json.dumps({**measured[key], "key": list(key)}) + "\n")
            print(f"  {key[0]} / {key[1]} on {spec['scenario']}: " + (f"FAILED {error}" if error else ", ".join(
                f"C={c}: {p['step_seconds']:.2f} s/step at batch {p['batch']}, {p['peak_mb']:.0f} MB"
                for c, p in points.items())), flush=True)
    rows, suites = table_rows(cells, measured, args.assumed_tflops)
    device = "cpu" if args.device == "cpu" else args.device
    header = (f"{device} ({cpu_model()}, {os.environ.get('OMP_NUM_THREADS')} thread(s)), commit {commit()}, "
              f"timed step at batch {args.batch} after a batch-1 warm-up, {time.perf_counter() - started:.0f}s in all")
    markdown = render(rows, suites, header, args.assumed_tflops)
    (out / f"perf_paper_{tag}.md").write_text(markdown + "\n")
    with open(out / f"perf_paper_{tag}.csv", "w") as handle:
        keys = list(rows[0]) if rows else []
        handle.write(",".join(keys) + "\n")
        for row in rows:
            handle.write(",".join(str(row[k]) for k in keys) + "\n")
    print(markdown)
    return 0 if all(not m["error"] for m in measured.values()) else 1


def table_rows(cells: dict[str, list], measured: dict[tuple, dict[str, Any]],
               tflops: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per measured entry: its numbers and its cells' projected totals; per suite: the totals."""
    rows, suites = [], []
    for suite, suite_cells in cells.items():
        totals = {"cells": 0, "steps": 0, "flops": 0.0, "cpu": 0.0, "missing": 0}
        per_key: dict[tuple, list] = {}
        for cell in suite_cells:
            key = (suite, cell.label or cell.strategy, group(cell.scenario))
            m = measured.get(key)
            totals["cells"] += 1
            if m is None or m["error"] or not m["points"]:
                totals["missing"] += 1
                continue
            cost = project_cell(m, cell.scenario)
            per_key.setdefault(key, []).append(cost)
            totals["steps"] += cost.steps
            totals["flops"] += cost.flops
            totals["cpu"] += cost.cpu_seconds
        for key, costs in per_key.items():
            m = measured[key]
            ref = m["points"][max(m["points"])]
            rows.append({"suite": suite, "entry": key[1], "family": m["family"], "measured_on": m["scenario"],
                         "batch": ref["batch"], "recipe_batch": ref["recipe_batch"],
                         "s_per_step": round(ref["step_seconds"], 3),
                         "gflop_per_step": round(ref["step_flops_b"] / 1e9, 1),
                         "eval_s_per_image": round(ref["eval_seconds_per_image"], 3),
                         "peak_mb": round(max(p["peak_mb"] for p in m["points"].values())),
                         "cells": len(costs), "steps_per_cell": round(sum(c.steps for c in costs) / len(costs)),
                         "cpu_hours": round(sum(c.cpu_seconds for c in costs) / 3600, 1),
                         "gpu_hours_est": round(sum(c.flops for c in costs) / (tflops * 1e12) / 3600, 2)})
        suites.append({"suite": suite, "cells": totals["cells"], "not_measured": totals["missing"],
                       "steps": totals["steps"], "pflop": totals["flops"] / 1e15,
                       "cpu_hours": totals["cpu"] / 3600, "gpu_hours_est": totals["flops"] / (tflops * 1e12) / 3600})
    return rows, suites


def render(rows: list[dict[str, Any]], suites: list[dict[str, Any]], header: str, tflops: float) -> str:
    lines = [f"Measured on {header}.", "",
             "| suite | entry | measured on | batch (recipe) | s/step | GFLOP/step | eval s/img | peak MB | cells "
             "| steps/cell | CPU-h | GPU-h (est.) |", "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['entry']} | {r['measured_on']} | {r['batch']} ({r['recipe_batch']}) "
                     f"| {r['s_per_step']} | {r['gflop_per_step']} | {r['eval_s_per_image']} | {r['peak_mb']} "
                     f"| {r['cells']} | {r['steps_per_cell']} | {r['cpu_hours']} | {r['gpu_hours_est']} |")
    lines += ["", f"Projected per suite (GPU-hours: an ESTIMATE at an assumed sustained {tflops:.0f} TFLOP/s):", "",
              "| suite | cells | not measured | training steps | PFLOP | CPU-hours (1 thread, this CPU) "
              "| GPU-hours (est.) |", "|---|---|---|---|---|---|---|"]
    for s in suites:
        lines.append(f"| {s['suite']} | {s['cells']} | {s['not_measured']} | {s['steps']:,} | {s['pflop']:.1f} "
                     f"| {s['cpu_hours']:,.0f} | {s['gpu_hours_est']:,.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
