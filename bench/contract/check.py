"""`promptshift check-plugin FILE`: the strategy contract, run on tiny CPU models, one pass/fail line per check.

Checks, for every strategy the file registers:
- config: the config class round-trips through `to_dict`/`from_dict` and JSON.
- declared: `flags`, `family`, `paper`, `supported_scenarios` and `backbone_families` are set by the strategy
  itself (not inherited from the `Strategy` base), with valid values: comparability flags must be a decision.
- documented: the docstring has a "Trains: … Freezes: …" line.
Then per backbone family it runs on (random micro backbones, a tiny real scenario; see `bench.contract.tiny`):
- trainable: the parameters `trainable_parameters()` declares are exactly those that move in training.
- frozen: every other parameter and every backbone buffer is bit-for-bit unchanged.
- outputs: logits have shape (batch, num_classes) and are finite; training losses are finite.
- learns: accuracy on the last step's training data, among that step's classes, ends above chance.
- deterministic: a second run with the same seed gives the same accuracy matrix and losses.

The micro backbones are random, and glyphs on white paper all look alike to them; so every image is printed on
paper of its class's colour (`tint_by_class`): a random backbone then tells classes apart, and "learns" tests
that the strategy's training works, not how good its features are.

This is the one contract: the registry-wide tests (tests/test_strategy_contract.py) run exactly these checks on every
built-in strategy, so built-ins meet what plugins must meet.
"""
from __future__ import annotations

import colorsys
import dataclasses
import json
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable

import torch

from bench.contract.plugins import PluginError, load_plugin_file
from bench.contract.tiny import TEST_BACKBONES, TINY_SCENARIOS
from bench.core.data import TensorData
from bench.core.strategy import SCENARIO_KINDS, STRATEGIES, Flags, Strategy
from bench.train.harness import evaluate, fill_cache, run_stream, to_pixels

FAMILIES = ("baseline", "continual", "prompt", "vision-language")
DECLARED = ("flags", "family", "paper", "supported_scenarios", "backbone_families")
LEARN_MARGIN = 0.10  # training accuracy must beat chance by this much (absolute)
# A tiny step holds ~50 images: at the default batch of 64 that is one optimizer step per epoch, too few to learn.
CHECK_OVERRIDES = {"batch_size": 16}
CHECK_SEED = 0


@dataclass(frozen=True)
class CheckResult:
    """One line of the report."""

    strategy: str
    where: str  # "" for checks of the class itself, else "backbone / scenario kind"
    check: str
    passed: bool
    detail: str

    def line(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        return f"{'PASS' if self.passed else 'FAIL'}  {self.strategy}{where}  {self.check}: {self.detail}"


# ------------------------------------------------------------------------------------------ class checks
def check_config(cls: type[Strategy]) -> tuple[bool, str]:
    """Defaults -> dict -> JSON -> dict -> config gives back an equal config."""
    try:
        cfg = cls.config_cls()
        text = json.dumps(cfg.to_dict(), sort_keys=True)
        again = cls.config_cls.from_dict(json.loads(text))
    except Exception as error:  # noqa: BLE001 - any failure is the check's answer
        return False, f"{cls.config_cls.__name__} does not round-trip: {type(error).__name__}: {error}"
    if again != cfg:
        changed = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(again, f.name)]
        return False, f"{cls.config_cls.__name__} changes on a JSON round-trip: fields {changed}"
    missing_help = [name for name, text in cls.config_cls.help().items() if not text]
    note = f" (fields without help: {missing_help})" if missing_help else ""
    return True, f"{cls.config_cls.__name__} round-trips through to_dict/from_dict and JSON{note}"


def _declared_by_strategy(cls: type[Strategy], attribute: str) -> bool:
    """Set in the class or an ancestor other than the `Strategy` base (and its own bases)."""
    base_chain = set(Strategy.__mro__)
    return any(attribute in klass.__dict__ for klass in cls.__mro__ if klass not in base_chain)


def check_declared(cls: type[Strategy]) -> tuple[bool, str]:
    """The comparability facts a leaderboard row shows are decided by the strategy, not inherited defaults."""
    problems = [f"{name} is not set (the Strategy base's default would be used)"
                for name in DECLARED if not _declared_by_strategy(cls, name)]
    if not isinstance(cls.flags, Flags):
        problems.append(f"flags must be a bench.core.strategy.Flags, got {type(cls.flags).__name__}")
    if cls.family not in FAMILIES:
        problems.append(f"family {cls.family!r} is not one of {FAMILIES}")
    if not str(cls.paper).strip():
        problems.append("paper is empty")
    unknown = [k for k in cls.supported_scenarios if k not in SCENARIO_KINDS]
    if not cls.supported_scenarios or unknown:
        problems.append(f"supported_scenarios {tuple(cls.supported_scenarios)} must be a non-empty subset of "
                        f"{SCENARIO_KINDS}")
    if not cls.backbone_families or any(f not in TEST_BACKBONES for f in cls.backbone_families):
        problems.append(f"backbone_families {tuple(cls.backbone_families)} must be a non-empty subset of "
                        f"{tuple(TEST_BACKBONES)}")
    if problems:
        return False, "; ".join(problems)
    flags = cls.flags.short() if isinstance(cls.flags, Flags) else "?"
    return True, f"flags: {flags}; family {cls.family}; scenarios {', '.join(cls.supported_scenarios)}; " \
                 f"backbones {', '.join(cls.backbone_families)}"


def check_documented(cls: type[Strategy]) -> tuple[bool, str]:
    doc = " ".join((cls.__doc__ or "").split())
    if "Trains:" in doc and "Freezes:" in doc:
        return True, "docstring has a 'Trains: … Freezes: …' line"
    return False, "the class docstring must name the paper and say 'Trains: … Freezes: …'"


# ----------------------------------------------------------------------------------------- run checks
@dataclass
class _Run:
    strategy: Strategy
    scenario: object
    acc_matrix: list[list[float]]
    losses: list[float]
    before: dict[str, torch.Tensor]
    buffers_before: dict[str, torch.Tensor]


def tint_by_class(data: TensorData, num_classes: int) -> TensorData:
    """The same images on paper of their class's colour (evenly spaced hues); unlabelled images stay white."""
    palette = torch.tensor([colorsys.hsv_to_rgb(i / num_classes, 1.0, 1.0) for i in range(num_classes)])
    colour = torch.ones(len(data), 3)
    labelled = data.labels >= 0
    colour[labelled] = palette[data.labels[labelled]].float()
    return TensorData((data.images.float() * colour[:, :, None, None]).round().to(torch.uint8), data.labels)


def _tinted(scenario):
    n = len(scenario.class_names)
    steps = [dataclasses.replace(s, data=tint_by_class(s.data, n), unlabelled=None if s.unlabelled is None
                                 else tint_by_class(s.unlabelled, n)) for s in scenario.steps]
    evals = [dataclasses.replace(e, data=tint_by_class(e.data, n)) for e in scenario.eval_sets]
    return dataclasses.replace(scenario, steps=steps, eval_sets=evals)


def _build(name: str, backbone: str, kind: str, overrides: dict | None = None):
    from bench.run.runner import CellConfig, prepare

    scenario_name, scenario_overrides = TINY_SCENARIOS[kind]
    cell = CellConfig(scenario=scenario_name, strategy=name, backbone=backbone, seed=CHECK_SEED,
                      strategy_config={**CHECK_OVERRIDES, **(overrides or {})},
                      scenario_overrides=dict(scenario_overrides))
    scenario, _module, strategy = prepare(cell)
    return _tinted(scenario), strategy


def _run(name: str, backbone: str, kind: str, overrides: dict | None = None) -> _Run:
    scenario, strategy = _build(name, backbone, kind, overrides)
    before = {n: p.detach().clone() for n, p in strategy.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in strategy.backbone.named_buffers()}
    result = run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), CHECK_SEED,
                        show_progress=False)
    return _Run(strategy, scenario, result.acc_matrix, result.losses, before, buffers)


def _max_change(a: torch.Tensor, b: torch.Tensor) -> str:
    if a.shape != b.shape:
        return f"shape {tuple(a.shape)} -> {tuple(b.shape)}"
    if a.is_floating_point():
        return f"max |change| {float((a.float() - b.float()).abs().nan_to_num(float('inf')).max()):.3g}"
    return "values changed"


def _names(names: Iterable[str], limit: int = 4) -> str:
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_trainable(run: _Run) -> tuple[bool, str]:
    registered = {id(p): n for n, p in run.strategy.named_parameters()}
    declared_params = list(run.strategy.trainable_parameters())
    stray = [n for n, p in declared_params if id(p) not in registered]
    if stray:
        return False, f"declared trainable but not registered on the module (nn.Parameter attribute " \
                      f"missing?): {_names(stray)}"
    declared = {registered[id(p)] for _, p in declared_params}
    after = dict(run.strategy.named_parameters())
    moved = {n for n, p in after.items() if not torch.equal(p.detach(), run.before[n])}
    problems = []
    if declared - moved:
        problems.append(f"declared trainable but never updated: {_names(declared - moved)}")
    if moved - declared:
        problems.append(f"updated but not declared trainable: {_names(moved - declared)}")
    if not declared and not run.strategy.training_free:
        problems.append("trainable_parameters() declares nothing (set training_free = True if that is meant)")
    if declared and run.strategy.training_free:
        problems.append("training_free = True, yet trainable_parameters() declares parameters")
    if problems:
        return False, "; ".join(problems)
    if not declared:
        return True, "training-free: declares no trainable parameter, and none moved"
    count = sum(after[n].numel() for n in declared)
    return True, f"{len(declared)} declared tensor(s) ({count:,} parameters) moved, nothing else did"


def check_frozen(run: _Run) -> tuple[bool, str]:
    declared = {id(p) for _, p in run.strategy.trainable_parameters()}
    changed = [f"{n} ({_max_change(run.before[n], p.detach())})" for n, p in run.strategy.named_parameters()
               if id(p) not in declared and not torch.equal(p.detach(), run.before[n])]
    buffers = dict(run.strategy.backbone.named_buffers())
    changed += [f"backbone buffer {n} ({_max_change(b, buffers[n])})" for n, b in run.buffers_before.items()
                if n not in buffers or not torch.equal(b, buffers[n].detach())]
    if changed:
        return False, f"frozen weights changed: {_names(changed)}"
    frozen = sum(p.numel() for p in run.strategy.parameters() if id(p) not in declared)
    return True, f"{frozen:,} frozen parameters bit-for-bit unchanged"


@torch.no_grad()
def check_outputs(run: _Run) -> tuple[bool, str]:
    strategy, info = run.strategy, run.scenario.info()
    images = run.scenario.eval_sets[0].data.images[:8]
    x = to_pixels(images, torch.device("cpu"))
    strategy.eval()
    strategy.before_eval()
    try:
        cached = strategy.frozen_inputs(x)
        logits = strategy(None if (cached is not None and not strategy.needs_pixels) else x, cached)
        pixel_logits = strategy.predict_pixels(x)
    finally:
        strategy.after_eval()
    problems = []
    for label, out in (("forward", logits), ("predict_pixels", pixel_logits)):
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(images), info.num_classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            problems.append(f"{label} returned {shape}, expected ({len(images)}, {info.num_classes})")
        elif not bool(torch.isfinite(out).all()):
            problems.append(f"{label} returned non-finite logits (NaN or inf)")
    # A step without gradient steps has no loss (the harness reports NaN): every step of a training-free strategy,
    # and the steps its `trains_on` skips (read by index: the run's contexts are gone by now).
    steps = len(run.losses)
    skipped = {i for i in range(steps) if strategy.training_free
               or not strategy.trains_on(SimpleNamespace(index=i, num_steps=steps))}
    bad_losses = [i for i, loss in enumerate(run.losses) if i not in skipped and not math.isfinite(loss)]
    if bad_losses:
        problems.append(f"training loss is not finite at step(s) {bad_losses}: {run.losses}")
    if problems:
        return False, "; ".join(problems)
    return True, f"logits ({len(images)}, {info.num_classes}), finite; losses {[round(v, 3) for v in run.losses]}"


def check_learns(run: _Run) -> tuple[bool, str]:
    # The last step alone: a continual learner may forget earlier steps, and that is not what is tested here.
    strategy, step = run.strategy, run.scenario.steps[-1]
    data = TensorData(step.data.images, step.data.labels)
    strategy.eval()
    strategy.before_eval()
    try:
        fill_cache(strategy, data, torch.device("cpu"))
        accuracy = evaluate(strategy, data, step.classes, torch.device("cpu"))
    finally:
        strategy.after_eval()
    chance = 1.0 / len(step.classes)
    detail = f"last step's training accuracy {accuracy:.1%} vs chance {chance:.1%} ({len(step.classes)} classes)"
    if not accuracy > chance + LEARN_MARGIN:
        return False, detail + f"; needs more than chance + {LEARN_MARGIN:.0%} (raise epochs or lr with --set)"
    return True, detail


def _same(a: list, b: list) -> bool:
    # NaN compares equal to NaN here: a run that is NaN twice is still deterministic (outputs fails it).
    return json.dumps(a) == json.dumps(b)


def check_deterministic(first: _Run, second: _Run) -> tuple[bool, str]:
    if _same(first.acc_matrix, second.acc_matrix) and _same(first.losses, second.losses):
        return True, f"two runs with seed {CHECK_SEED} gave identical accuracy matrices and losses"
    return False, f"two runs with seed {CHECK_SEED} differ: accuracy {first.acc_matrix} vs {second.acc_matrix}, " \
                  f"losses {first.losses} vs {second.losses} (draw randomness from torch's seeded RNG only)"


def _short_error(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno}: {frames[-1].line})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


RUN_CHECKS: tuple[tuple[str, Callable[[_Run], tuple[bool, str]]], ...] = (
    ("trainable", check_trainable), ("frozen", check_frozen), ("outputs", check_outputs), ("learns", check_learns))


CLASS_CHECKS: tuple[tuple[str, Callable[[type[Strategy]], tuple[bool, str]]], ...] = (
    ("config", check_config), ("declared", check_declared), ("documented", check_documented))
# Every check's name, in report order (the registry-wide tests are parametrized over it).
CHECK_NAMES: tuple[str, ...] = (*(c for c, _ in CLASS_CHECKS), *(c for c, _ in RUN_CHECKS), "deterministic")


def run_kind(cls: type[Strategy]) -> str:
    """The tiny scenario a strategy is run on: class-incremental (two steps) when supported."""
    kinds = [k for k in cls.supported_scenarios if k in TINY_SCENARIOS]
    return "class_incremental" if "class_incremental" in kinds else (kinds[0] if kinds else "")


def check_strategy(name: str, overrides: dict | None = None) -> list[CheckResult]:
    """Every check for one registered strategy; `overrides` changes config fields for the runs."""
    cls = STRATEGIES.get(name)
    results = [CheckResult(name, "", check, *fn(cls)) for check, fn in CLASS_CHECKS]
    kind = run_kind(cls)
    families = [f for f in cls.backbone_families if f in TEST_BACKBONES]
    if not kind or not families:
        results.append(CheckResult(name, "", "run", False, "no tiny scenario or test backbone fits its "
                                   "supported_scenarios / backbone_families, so it cannot be run"))
        return results
    for family in families:
        where = f"{TEST_BACKBONES[family]} / {kind}"
        try:
            first = _run(name, TEST_BACKBONES[family], kind, overrides)
        except Exception as error:  # noqa: BLE001 - a crash fails every run check, with one clear line
            detail = f"training crashed: {_short_error(error)}"
            results += [CheckResult(name, where, check, False, detail) for check, _ in RUN_CHECKS]
            results.append(CheckResult(name, where, "deterministic", False, detail))
            continue
        for check, fn in RUN_CHECKS:
            try:
                results.append(CheckResult(name, where, check, *fn(first)))
            except Exception as error:  # noqa: BLE001
                results.append(CheckResult(name, where, check, False, f"crashed: {_short_error(error)}"))
        try:
            results.append(CheckResult(name, where, "deterministic", *check_deterministic(
                first, _run(name, TEST_BACKBONES[family], kind, overrides))))
        except Exception as error:  # noqa: BLE001
            results.append(CheckResult(name, where, "deterministic", False, f"crashed: {_short_error(error)}"))
    return results


def registered_by(module: object) -> list[str]:
    """Names of the strategies whose class is defined in `module`."""
    return [n for n in STRATEGIES.names() if STRATEGIES.get(n).__module__ == getattr(module, "__name__", None)]


def check_plugin(path: str | Path, overrides: dict | None = None) -> list[CheckResult]:
    """Import a plugin file and check every strategy it registers. Raises PluginError when there is none."""
    import strategies  # noqa: F401  (built-ins first: a plugin may build on them, and must not reuse a name)

    module = load_plugin_file(path)
    names = registered_by(module)
    if not names:
        raise PluginError(f"plugin {Path(path).resolve()} imported fine but registers no strategy: decorate a "
                          f"Strategy subclass with @register_strategy('a_new_name', config=YourConfig)")
    for name in names:  # a wrong --set value fails here, once and clearly, not as every run check's crash
        try:
            STRATEGIES.get(name).config_cls.from_dict({**CHECK_OVERRIDES, **(overrides or {})})
        except ValueError as error:
            raise PluginError(f"--set: {error}") from None
    return [result for name in names for result in check_strategy(name, overrides)]


def main(path: str | Path, overrides: dict | None = None, echo: Callable[[str], None] = print) -> int:
    """Print one line per check; 0 when all pass, 1 when any fails, 2 when the plugin cannot be loaded."""
    try:
        results = check_plugin(path, overrides)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for result in results:
        echo(result.line())
    failed = [r for r in results if not r.passed]
    strategies_checked = sorted({r.strategy for r in results})
    echo(f"{len(results) - len(failed)}/{len(results)} checks passed for {', '.join(strategies_checked)}")
    return 1 if failed else 0
