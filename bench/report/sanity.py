"""Sanity checks every leaderboard runs on its own results: computed from the records, never written by hand.

Each check gives, per table row, a verdict: "pass", "fail" (violated beyond noise) or "undecided" (within noise).
Noise is the t-based 95% interval over seeds of `bench.report.stats` (a single seed: no interval, the point itself).

- upper bound: every row is checked against the joint bound of its own family on the same scenario and backbone
  (`BOUND_FAMILY`): learners that keep the backbone's features frozen and learn a head on them (linear probe, MLP
  head, SimpleCIL, RanPAC, CoOp's text-derived head) against the best of the frozen-feature bounds (`joint_probe`,
  `joint_ridge`); learners that change the features (fine-tuning, PETL, prompts in the backbone) against joint
  full fine-tuning (`joint`). Paired over shared seeds: fail when the row is significantly above its bound
  (paired t-test, p < 0.05), pass when its mean is at or below it, undecided otherwise. Joint fine-tuning of a
  small backbone is no bound for a frozen-feature learner (RanPAC beat it on every ci5 seed): that is why the
  families are checked apart.
- chance: every row's headline metric beats chance (trained or training-free, such as zero-shot or prototypes),
  1 / (classes the evaluation set is predicted among), averaged like the headline (fail when the interval lies
  wholly at or below chance).
- untrained start: every trained row beats its own untrained model, `results.initial_accuracy` and the last row
  read the headline's way over the evaluation sets the start scored; paired per seed (fail when the interval of the
  gain lies wholly at or below 0). Rows without a start: no verdict.
- zero-shot quality: zero-shot rows equal the backbone's measured quality (`bench/models/checkpoints_data/MANIFEST.json`, accuracy
  among all glyph classes on the bench fonts, clean style). Our evaluation sets draw other images of the same fonts
  and style, and predict among k of the K classes. Restricting the label space can only turn wrong predictions
  right, so "equal" means: accuracy >= quality - margin always, and <= quality + margin when k = K, with margin the
  95% normal interval of a difference of two binomial proportions, 1.96·sqrt(q(1-q)/N_q + p(1-p)/N), N pooled
  over seeds, and over the sets that predict among every class (a class-incremental task's set holds a fifth of
  the classes: together they are the measurement's population, alone they are not). Other styles and data sets
  are not comparable: no verdict.
- untrained start (task kinds): every row of the multimodal streams, on every task kind of its stream, trains
  above its own untrained start: the kind's official metric right after training the task minus before any
  training, paired per seed (bench/report/multimodal.py; fail when the interval lies wholly at or below 0).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.eval.metrics import harmonic_mean
from bench.report.columns import BOUND_FAMILY
from bench.report.stats import interval, paired
from bench.report.tables import scenario_name, seed_order, strategy_name, variant_of

__all__ = ["Finding", "Row", "table_rows", "CHECKS", "run_checks", "failures_by_scenario", "sanity_markdown", "ZERO_SHOT_QUALITY"]

# Zero-shot strategies and the MANIFEST quality key that measures the same thing on the bench fonts.
ZERO_SHOT_QUALITY: dict[str, str] = {"zeroshot_clip": "zero_shot_bench_fonts"}
CHECKS = ("upper bound", "chance", "untrained start", "zero-shot quality", "untrained start (task kinds)")
Z95 = 1.959964


@dataclass(frozen=True)
class Finding:
    """One check on one table row."""

    check: str
    scenario: str
    row: str
    verdict: str  # "pass" | "fail" | "undecided"
    detail: str

    def line(self) -> str:
        return f"[{self.check}] {self.scenario} / {self.row}: {self.detail}"


@dataclass
class Row:
    scenario: str
    label: str
    backbone: str
    strategy: str
    records: list[Mapping[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.label} ({self.backbone})"

    @property
    def first(self) -> Mapping[str, Any]:
        return self.records[0]

    @property
    def joint(self) -> bool:
        return bool(((self.first.get("strategy") or {}).get("flags") or {}).get("joint_training"))

    @property
    def trained(self) -> bool:
        return ((self.first.get("strategy") or {}).get("trainable_params") or 0) > 0

    @property
    def submitted(self) -> bool:
        return bool(self.first.get("submitted"))


def table_rows(records: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Finished records grouped like the table rows: scenario, label, backbone, config variant, submitted."""
    groups: dict[tuple, Row] = {}
    for record in records:
        if record.get("status") != "ok":
            continue
        config = record.get("config") or {}
        label = strategy_name(record) + (" †submitted" if record.get("submitted") else "")
        key = (scenario_name(record), label, str(config.get("backbone", "")), variant_of(config),
               bool(record.get("submitted")))
        row = groups.setdefault(key, Row(key[0], label, key[2], str(config.get("strategy", label)), []))
        row.records.append(record)
    # Seed order, not the store's file order: a row's seeds read 0,1,2 and its sums run in one order on every build.
    for row in groups.values():
        row.records.sort(key=lambda record: seed_order((record.get("config") or {}).get("seed")))
    names: dict[tuple, int] = {}
    for row in groups.values():
        names[(row.scenario, row.label, row.backbone)] = names.get((row.scenario, row.label, row.backbone), 0) + 1
    for (scenario, label, backbone, variant, _), row in groups.items():
        if names[(scenario, label, backbone)] > 1:
            row.label = f"{label} [{variant[:8]}]"
    return list(groups.values())


# ------------------------------------------------------------------------------------------ record readings
def _kind(record: Mapping[str, Any]) -> str:
    return str((record.get("scenario") or {}).get("kind") or "")


def _label_space_sizes(record: Mapping[str, Any]) -> list[int]:
    """How many classes each evaluation set is predicted among after the last step (see scenarios.streams)."""
    scenario = record.get("scenario") or {}
    names = list(scenario.get("eval_names") or [])
    steps = [list(s) for s in scenario.get("classes_per_step") or []]
    total = len(scenario.get("class_names") or []) or len({c for s in steps for c in s})
    kind = _kind(record)
    if kind == "base_to_new":
        base = len({c for s in steps for c in s})
        return [base if n == "base" else total - base for n in names]
    if kind == "class_incremental":
        task_id = ((record.get("strategy") or {}).get("flags") or {}).get("task_id_at_test")
        seen = len({c for s in steps for c in s})
        return [len(steps[j]) if task_id and j < len(steps) else seen for j in range(len(names))]
    return [total] * len(names)


def _headline_of_row(values: Sequence[float], names: Sequence[str], kind: str) -> float:
    """The headline metric from one row of per-eval-set numbers (accuracies or chance levels)."""
    v = dict(zip(names, values))
    if kind == "base_to_new":
        return harmonic_mean(v["base"], v["new"])
    if kind == "domain_adaptation":
        return float(v["target"])
    return float(np.mean(values))


def _headline(record: Mapping[str, Any]) -> float:
    """The record's own headline: HM, target accuracy or final accuracy, from its metrics."""
    metrics = record.get("metrics") or {}
    for key in ("harmonic_mean", "target_acc", "final_accuracy"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key == "harmonic_mean" and {"base_acc", "new_acc"} <= set(metrics):
                return harmonic_mean(metrics["base_acc"], metrics["new_acc"])
            return float(value)
    return math.nan


def _headline_kind(record: Mapping[str, Any]) -> str:
    """The kind whose headline the record reports: a joint-trained record reports final accuracy only."""
    metrics = record.get("metrics") or {}
    return _kind(record) if {"harmonic_mean", "target_acc"} & set(metrics) else "joint"


def _chance(record: Mapping[str, Any]) -> float:
    names = list((record.get("scenario") or {}).get("eval_names") or [])
    sizes = _label_space_sizes(record)
    if not names or any(s <= 0 for s in sizes):
        return math.nan
    return _headline_of_row([1.0 / s for s in sizes], names, _headline_kind(record))


def _start_pair(record: Mapping[str, Any]) -> tuple[float, float]:
    """(trained, untrained) read the headline's way over the evaluation sets the untrained start scored.

    Base-to-new and adaptation need their named sets (HM of base and new; target). Otherwise the last row and the
    start row are averaged over the sets with a start entry (a null entry, "not evaluated", is left out of both).
    """
    results = record.get("results") or {}
    start, matrix = results.get("initial_accuracy"), results.get("acc_matrix")
    names = list(results.get("eval_names") or (record.get("scenario") or {}).get("eval_names") or [])
    if not isinstance(start, list) or not matrix or len(start) != len(names) or len(matrix[-1]) != len(names):
        return math.nan, math.nan
    kind = _headline_kind(record)
    if kind in ("base_to_new", "domain_adaptation"):
        if any(start[i] is None or matrix[-1][i] is None for i in range(len(names))):
            return math.nan, math.nan
        return (_headline_of_row([float(v) for v in matrix[-1]], names, kind),
                _headline_of_row([float(v) for v in start], names, kind))
    keep = [i for i, v in enumerate(start) if v is not None and matrix[-1][i] is not None]
    if not keep:
        return math.nan, math.nan
    return float(np.mean([matrix[-1][i] for i in keep])), float(np.mean([start[i] for i in keep]))


def _stats(values: Sequence[float]) -> tuple[float, float, int]:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0, int(arr.size)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _spread(mean: float, std: float, n: int) -> str:
    return f"{_pct(mean)} ± {std * 100:.1f} (n={n})" if n > 1 else f"{_pct(mean)} (n=1)"


# ------------------------------------------------------------------------------------------------- checks
# The joint bounds and the family each bounds are `BOUND_FAMILY` (bench.report.columns); every other strategy's
# family (a plugin's too) is "fine-tuning" unless listed in FROZEN_FEATURE_LEARNERS. Names, not a strategy attribute: records carry the strategy's name.
FROZEN_FEATURE_LEARNERS = frozenset({"linear_probe", "mlp_k", "simplecil", "ranpac", "coop", "zeroshot_clip"})


def bound_family(strategy: str) -> str:
    """The family whose joint bound a strategy is checked against (a bound: the family it bounds)."""
    if strategy in BOUND_FAMILY:
        return BOUND_FAMILY[strategy]
    return "frozen features" if strategy in FROZEN_FEATURE_LEARNERS else "fine-tuning"


def _per_seed(row: Row) -> dict[int, float]:
    return {int((rec.get("config") or {}).get("seed", i)): _headline(rec) for i, rec in enumerate(row.records)}


def check_upper_bound(rows: Sequence[Row]) -> list[Finding]:
    """Each row against the best joint bound of its own family on its scenario and backbone."""
    out = []
    bounds = [r for r in rows if r.joint and not r.submitted and r.strategy in BOUND_FAMILY]
    for row in rows:
        if row.joint:
            continue
        family = bound_family(row.strategy)
        mine = [b for b in bounds if BOUND_FAMILY[b.strategy] == family and b.scenario == row.scenario
                and b.backbone == row.backbone]
        c = _stats([_headline(rec) for rec in row.records])
        if not mine or c[2] == 0:
            continue
        bound = max(mine, key=lambda b: _stats([_headline(rec) for rec in b.records])[0])
        j = _stats([_headline(rec) for rec in bound.records])
        test = paired(_per_seed(row), _per_seed(bound))
        if test.n >= 2:
            outcome = "fail" if test.verdict() == "holds" else "pass" if c[0] <= j[0] else "undecided"
        else:
            outcome = "pass" if c[0] <= j[0] else "undecided"
        out.append(Finding("upper bound", row.scenario, row.name, outcome,
                           f"{row.label} {_spread(*c)} vs the {family} bound {bound.label} {_spread(*j)}"
                           + (f" (paired over {test.n} seeds: {test.mean_diff * 100:+.1f} pt, p {test.t_p:.3f})"
                              if test.n >= 2 else "")))
    return out


def _beats(check: str, row: Row, gain: tuple[float, float, int], what: str) -> Finding | None:
    mean, std, n = gain
    if n == 0:
        return None
    low, high = interval(mean, std, n)
    outcome = "pass" if low > 0 else ("fail" if high <= 0 else "undecided")
    return Finding(check, row.scenario, row.name, outcome, what)


def check_chance(rows: Sequence[Row]) -> list[Finding]:
    out = []
    for row in rows:  # training-free rows too (zero-shot, prototypes): a model at chance is broken either way
        head = _stats([_headline(rec) for rec in row.records])
        chance = _chance(row.first)
        if math.isnan(chance):
            continue
        finding = _beats("chance", row, (head[0] - chance, head[1], head[2]),
                         f"headline {_spread(*head)} vs chance {_pct(chance)}")
        if finding:
            out.append(finding)
    return out


def check_start(rows: Sequence[Row]) -> list[Finding]:
    out = []
    for row in (r for r in rows if r.trained):
        pairs = [_start_pair(rec) for rec in row.records]
        pairs = [(h, s) for h, s in pairs if not math.isnan(h) and not math.isnan(s)]
        if not pairs:
            continue
        gain = _stats([h - s for h, s in pairs])
        start = _stats([s for _, s in pairs])
        finding = _beats("untrained start", row, gain,
                         f"gain over its untrained start {_spread(*gain)} (start {_spread(*start)})")
        if finding:
            out.append(finding)
    return out


def _eval_styles(record: Mapping[str, Any]) -> list[str]:
    scenario = record.get("scenario") or {}
    names, domains = list(scenario.get("eval_names") or []), list(scenario.get("domains") or [])
    kind = _kind(record)
    if kind == "domain_incremental":
        return names
    if kind == "domain_adaptation":
        return [domains[0] if n == "source" else (domains[1] if len(domains) > 1 else "") for n in names]
    return [domains[0] if domains else ""] * len(names)


def check_zero_shot(rows: Sequence[Row], quality: Mapping[str, Mapping[str, float]], quality_images: int,
                    all_classes: int) -> list[Finding]:
    """Clean-style evaluation sets that predict among every class are pooled into one comparison (in a
    class-incremental stream each holds one task's classes, and classes differ in difficulty, so one task's set is
    not a sample of the measurement's population; together they are); a set with a smaller label space is compared
    on its own, against the lower bound only."""
    out = []
    for row in rows:
        key = ZERO_SHOT_QUALITY.get(row.strategy)
        q = (quality.get(row.backbone) or {}).get(key) if key else None
        if q is None:
            continue
        names = list((row.first.get("scenario") or {}).get("eval_names") or [])
        styles, spaces = _eval_styles(row.first), _label_space_sizes(row.first)
        clean = [j for j in range(len(names)) if styles[j] == "clean"]
        groups = [[j for j in clean if spaces[j] >= all_classes]] + [[j] for j in clean if spaces[j] < all_classes]
        for group in filter(None, groups):
            correct = images = 0.0
            for rec in row.records:
                sizes = (rec.get("scenario") or {}).get("eval_sizes") or []
                last = (rec.get("results") or {}).get("acc_matrix", [[None]])[-1]
                for j in group:
                    if j < len(last) and last[j] is not None and j < len(sizes):
                        correct += last[j] * sizes[j]
                        images += sizes[j]
            if images == 0:
                continue
            p = correct / images
            margin = Z95 * math.sqrt(q * (1 - q) / quality_images + p * (1 - p) / images)
            k = spaces[group[0]]
            low_ok, high_ok = p >= q - margin, (k < all_classes or p <= q + margin)
            rule = f"≥ {_pct(q)} − {margin * 100:.1f}" + ("" if k < all_classes else f" and ≤ {_pct(q)} + "
                                                                                        f"{margin * 100:.1f}")
            sets = ", ".join(repr(names[j]) for j in group)
            out.append(Finding("zero-shot quality", row.scenario, row.name, "pass" if low_ok and high_ok else "fail",
                               f"eval set(s) {sets} ({k} of {all_classes} classes, {int(images)} images): "
                               f"{_pct(p)}; the backbone's measured quality {_pct(q)} ({quality_images} images) "
                               f"requires {rule}"))
    return out


def _manifest_quality() -> tuple[dict[str, dict[str, float]], int, int]:
    from bench.models.checkpoints import CHECKPOINT_DIR
    from bench.models.quality import TEST_PER_FONT
    from scenarios import glyphs

    path = CHECKPOINT_DIR / "MANIFEST.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    quality = {stem: entry.get("quality") or {} for stem, entry in manifest.items()}
    classes = len(glyphs.GLYPH_CLASSES)
    return quality, TEST_PER_FONT * len(glyphs.BENCH_FONTS) * classes, classes


def run_checks(records: Iterable[Mapping[str, Any]],
               quality: Callable[[], tuple[dict[str, dict[str, float]], int, int]] = _manifest_quality
               ) -> list[Finding]:
    """Every check on every table row. `quality`: (backbone -> MANIFEST quality, images it was measured on, classes)."""
    rows = table_rows(records)
    findings = check_upper_bound(rows) + check_chance(rows) + check_start(rows)
    if any(ZERO_SHOT_QUALITY.get(r.strategy) for r in rows):
        findings += check_zero_shot(rows, *quality())
    return findings


def failures_by_scenario(findings: Iterable[Finding]) -> dict[str, list[str]]:
    """The failing checks' lines, by scenario (what each table prints at its top)."""
    out: dict[str, list[str]] = {}
    for finding in findings:
        if finding.verdict == "fail":
            out.setdefault(finding.scenario, []).append(finding.line())
    return out


def sanity_markdown(findings: Sequence[Finding]) -> str:
    """`sanity.md`: the rules, then per check its counts and every finding, failing ones first."""
    doc = (__doc__ or "").split("\n\n", 1)[1].strip()
    lines = ["# Sanity checks", "", "Computed from the results by `bench/report/sanity.py` on every leaderboard "
             "build. Verdicts: fail = violated beyond noise; undecided = within noise; pass.", "", doc, ""]
    for check in CHECKS:
        mine = [f for f in findings if f.check == check]
        counts = {v: sum(f.verdict == v for f in mine) for v in ("fail", "undecided", "pass")}
        lines += [f"## {check}", "", f"{counts['fail']} fail, {counts['undecided']} undecided, {counts['pass']} pass "
                  f"(of {len(mine)} rows checked).", ""]
        order = {"fail": 0, "undecided": 1, "pass": 2}
        lines += [f"- **{f.verdict.upper()}** {f.scenario} / {f.row}: {f.detail}"
                  for f in sorted(mine, key=lambda f: order[f.verdict])]
        lines.append("")
    return "\n".join(lines)


def write_sanity(findings: Sequence[Finding], out_dir: Path | str) -> Path:
    path = Path(out_dir) / "sanity.md"
    path.write_text(sanity_markdown(findings), encoding="utf-8")
    return path
