"""The one column table of the leaderboards: what each column shows, how its cell reads, and its legend line.

Both renderers read these specifications: `bench.report.tables` (Markdown) and `bench.report.html_report` (HTML).
A column is (key, label, render, numeric, legend); `render(row)` gives the shown text and the value to sort by, for
one row of the seed aggregates (`bench.report.tables.aggregate`, after `prepare_rows`). Which columns a scenario
shows depends on its kind and on its data: the two forgetting definitions only where they differ, forward transfer
only where a before-training row exists, robustness seconds only where robustness ran.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.report.stats import NOISE_RULE, half_width, within_noise_of_best

__all__ = ["MISSING", "Column", "KIND_METRICS", "HEADLINE_METRIC", "METRIC_LABELS", "NEAR_BEST", "COMMON_LEGEND",
           "B2N_AVERAGE_COLUMNS", "B2N_AVERAGE_LEGEND", "scenario_columns", "legend_lines",
           "prepare_rows", "forgetting_definitions_agree", "percent_column", "fmt_number", "mean_std_text"]

MISSING = "—"
NEAR_BEST = "≈"

Cell = tuple[str, float | str | None]


@dataclass(frozen=True)
class Column:
    """One column: `render(row)` -> (text, sort value; None sorts last)."""

    key: str
    label: str
    render: Callable[[Mapping[str, Any]], Cell]
    numeric: bool = True
    legend: str = ""


# ------------------------------------------------------------------------------------------------ formatting
def fmt_number(value: float, fmt: str) -> str:
    text = format(value, fmt)
    # Avoid "-0.0" for tiny negatives that round to zero.
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def _isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def mean_std_text(mean: Any, std: Any, n: int, fmt: str, scale: float = 1.0) -> str:
    """"mean ± std" (std only with more than one seed), "—" for a missing mean."""
    if _isnan(mean):
        return MISSING
    text = fmt_number(mean * scale, fmt)
    if n > 1 and not _isnan(std):
        text += " ± " + fmt_number(std * scale, fmt)
    return text


def _spread(key: str, fmt: str = ".1f", scale: float = 100.0) -> Callable[[Mapping[str, Any]], Cell]:
    def render(row: Mapping[str, Any]) -> Cell:
        mean = row.get(f"{key}_mean", math.nan)
        text = mean_std_text(mean, row.get(f"{key}_std"), int(row.get("n_seeds", 1)), fmt, scale)
        return text, (None if _isnan(mean) else float(mean) * scale)
    return render


def percent_column(key: str, label: str, legend: str = "") -> Column:
    """A column of fractions shown as "mean ± std" percent over seeds (e.g. the robustness columns)."""
    return Column(key, label, _spread(key), True, legend)


def _plain(key: str, fmt: str, scale: float = 1.0) -> Callable[[Mapping[str, Any]], Cell]:
    def render(row: Mapping[str, Any]) -> Cell:
        value = row.get(key, math.nan)
        return (MISSING, None) if _isnan(value) else (fmt_number(value * scale, fmt), float(value) * scale)
    return render


def _text(key: str) -> Callable[[Mapping[str, Any]], Cell]:
    def render(row: Mapping[str, Any]) -> Cell:
        text = str(row.get(key) or "") or MISSING
        return text, text
    return render


def _params(row: Mapping[str, Any]) -> Cell:
    count = row.get("trainable_params_mean", math.nan)
    if _isnan(count):
        return MISSING, None
    text = fmt_number(count, ",.0f")
    if (row.get("trainable_params_std") or 0) > 0:
        text += " ± " + fmt_number(row["trainable_params_std"], ",.0f")
    share = row.get("trainable_share_mean", math.nan)
    if not _isnan(share) and count > 0:
        text += f" ({share * 100:.3g}%)"
    stored = row.get("stored_values_mean", math.nan)
    if not _isnan(stored) and stored > 0:  # what a training-free row (or a prototype store) keeps instead
        text = f"{text} trained, {_short(stored)} stored" if count == 0 else f"{text}; {_short(stored)} stored"
    return text, float(count)


def _short(count: float) -> str:
    """1,560,000 -> "1.56M"; 12,300 -> "12.3k"."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}"
    return f"{count:.0f}"


def _memory(row: Mapping[str, Any]) -> Cell:
    text, value = _spread("peak_memory_mb", ".0f", 1.0)(row)
    if text != MISSING and row.get("_memory_mark"):
        text += f" [{row['_memory_mark']}]"
    return text, value


def _near(row: Mapping[str, Any]) -> Cell:
    return (NEAR_BEST, 1.0) if row.get("_near_best") else ("", 0.0)


def _seeds(row: Mapping[str, Any]) -> Cell:
    return str(int(row["n_seeds"])), float(row["n_seeds"])


# -------------------------------------------------------------------------------------------- metric columns
_INCREMENTAL = (
    ("final_accuracy", "Final acc (%)", "Final acc: mean accuracy over all tasks' test sets after training the last "
     "task (not the average incremental accuracy)."),
    ("avg_incremental_accuracy", "Avg incr. acc (%)", "Avg incr. acc: mean over steps i of the mean accuracy on "
     "tasks 0..i after step i."),
    ("forgetting_avalanche", "Forgetting, avalanche (%)", "Forgetting, avalanche: avalanche-lib's definition, "
     "accuracy on task j just after training task j minus its final accuracy, averaged over all tasks but the last."),
    ("forgetting_max", "Forgetting, max (%)", "Forgetting, max: Mammoth's definition (also PILOT, PyCIL), the best "
     "accuracy task j had at any step from its own on, the final one included, minus its final accuracy, averaged "
     "over all tasks but the last; never negative."),
    ("bwt", "BWT (%)", "BWT: backward transfer (Lopez-Paz & Ranzato, GEM), final minus just-after accuracy; equals "
     "minus the avalanche forgetting."),
)

# The joint upper bounds and the family of learners each bounds (read by the sanity check and the flags column).
BOUND_FAMILY: dict[str, str] = {"joint": "fine-tuning", "joint_probe": "frozen features",
                                "joint_ridge": "frozen features"}

KIND_METRICS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "class_incremental": _INCREMENTAL,
    "domain_incremental": _INCREMENTAL,
    "base_to_new": (
        ("base_acc", "Base (%)", "Base / New: accuracy on the base (seen) and new (unseen) classes."),
        ("new_acc", "New (%)", ""),
        ("harmonic_mean", "HM (%)", "HM: harmonic mean 2·base·new / (base + new) of the mean base and mean new "
         "accuracy over seeds (the CoOp/CoCoOp rule, not the mean of per-seed HMs); its ± is the spread of the "
         "per-seed HMs."),
    ),
    "domain_adaptation": (
        ("source_acc", "Source (%)", "Source / Target: accuracy on the source and target domains."),
        ("target_acc", "Target (%)", ""),
    ),
    "joint": (("final_accuracy", "Final acc (%)", "Final acc: mean accuracy over the evaluation sets after joint "
                                                  "training."),),
}

HEADLINE_METRIC: dict[str, str] = {
    "class_incremental": "final_accuracy",
    "domain_incremental": "final_accuracy",
    "base_to_new": "harmonic_mean",
    "domain_adaptation": "target_acc",
    "joint": "final_accuracy",
}

METRIC_LABELS: dict[str, str] = {key: label for cols in KIND_METRICS.values() for key, label, _ in cols}
METRIC_LABELS["fwt"] = "FWT (%)"

COMMON_LEGEND: tuple[str, ...] = (
    "Accuracy-type columns are percentages. Cells are mean ± sample standard deviation (ddof=1) over the seeds, "
    "a spread, not a confidence interval (their number n in the Seeds column; the CSV has each seed's value in "
    "the *_per_seed columns and the headline's 95% interval half-width in headline_ci95); a single seed shows the "
    "mean only. \"—\" means the value was not reported.",
    f"{NEAR_BEST}: within noise of the best row of the same backbone on the headline column (the joint-training "
    "upper bounds are never the reference best; rows on different backbones are not compared). " + NOISE_RULE,
    "Trainable params: parameters updated by the strategy, with their share of the backbone's parameters; "
    "\"stored\": values the strategy keeps besides its parameters and the backbone (prototype sums, RanPAC's "
    "projection and Gram matrix), counted from its buffers; params / new task: parameters added per new task.",
    "Train / Eval / Robustness / Total (s): wall-clock seconds training, evaluating the accuracy matrix, running the "
    "robustness attacks, and the whole cell.",
    "Flags: task-id = task identity given at test time; batch-vote = predictions depend on other samples in the "
    "test batch; +k fwd = k extra forward passes per sample; replay = stores past training images; "
    "unlabelled-target = trains on unlabelled target-domain images; class-names = reads class names (text "
    "prompts); joint = trained on all tasks at once (an upper bound, not a continual learner: `joint` bounds the "
    "learners that fine-tune the backbone, `joint_probe` and `joint_ridge` those that learn a head on its frozen "
    "features); buffer N images = replay memory size; same computation as X = this row is X's run under "
    "another name.",
    "†submitted = result submitted from outside, not reproduced by this harness.",
)

_FWT_LEGEND = ("FWT: forward transfer (GEM), accuracy on task j just before training it minus the untrained "
               "model's accuracy on task j, averaged over j ≥ 1; shown where the records hold the untrained start "
               "(results.initial_accuracy) and tasks were scored before training.")
_ONE_FORGETTING = ("Forgetting: the avalanche definition (just-after minus final) and Mammoth's (best from its "
                   "own step on minus final) give the same value on every row here, so one column shows both.")


def _has_data(agg: pd.DataFrame, key: str) -> bool:
    column = f"{key}_mean"
    return column in agg and bool(agg[column].notna().any())


def forgetting_definitions_agree(agg: pd.DataFrame) -> bool:
    """True when avalanche and Mammoth forgetting are equal (to 1e-9) or missing together on every row."""
    if not {"forgetting_avalanche_mean", "forgetting_max_mean"} <= set(agg.columns):
        return True
    a, m = agg["forgetting_avalanche_mean"].astype(float), agg["forgetting_max_mean"].astype(float)
    both_nan = a.isna() & m.isna()
    return bool(((a - m).abs().le(1e-9) | both_nan).all())


def _metric_columns(kind: str, agg: pd.DataFrame) -> list[Column]:
    specs = KIND_METRICS.get(kind)
    if specs is None:  # an unknown kind: whichever known metrics have data
        specs = tuple((k, label, "") for k, label in METRIC_LABELS.items() if _has_data(agg, k))
    columns = []
    one_forgetting = forgetting_definitions_agree(agg)
    for key, label, legend in specs:
        if one_forgetting and key == "forgetting_max":
            continue
        if one_forgetting and key == "forgetting_avalanche":
            label, legend = "Forgetting (%)", _ONE_FORGETTING
        columns.append(Column(key, label, _spread(key), True, legend))
    if kind in ("class_incremental", "domain_incremental") and _has_data(agg, "fwt"):
        columns.append(Column("fwt", METRIC_LABELS["fwt"], _spread("fwt"), True, _FWT_LEGEND))
    return columns


def scenario_columns(kind: str, agg: pd.DataFrame, robustness: Sequence[Column] = ()) -> list[Column]:
    """The columns of one scenario's table, in display order (`robustness`: extra columns the HTML page adds)."""
    columns = [Column("strategy", "Strategy", _text("_label"), False)]
    if agg["backbone"].astype(str).nunique() > 1:
        columns.append(Column("backbone", "Backbone", _text("backbone"), False))
    columns += _metric_columns(kind, agg)
    columns.append(Column("near_best", NEAR_BEST + " best", _near, True))
    columns += [Column("trainable_params", "Trainable params", _params),
                Column("params_per_new_task", "Params / new task", _plain("params_per_new_task_mean", ",.0f")),
                Column("train_seconds", "Train (s)", _spread("train_seconds", ".1f", 1.0)),
                Column("eval_seconds", "Eval (s)", _spread("eval_seconds", ".1f", 1.0))]
    if _has_data(agg, "robustness_seconds"):
        columns.append(Column("robustness_seconds", "Robustness (s)", _spread("robustness_seconds", ".1f", 1.0)))
    columns += [Column("seconds", "Total (s)", _spread("seconds", ".1f", 1.0)),
                Column("peak_memory_mb", "Peak memory (MB)", _memory),
                *robustness,
                Column("flags", "Flags", _text("flags"), False),
                Column("n_seeds", "Seeds", _seeds)]
    return columns


def legend_lines(kind: str, columns: Sequence[Column], measures: Sequence[str] = ()) -> list[str]:
    """The legend of a table: its shown columns' lines, the common lines, and what "peak memory" measured."""
    lines = [c.legend for c in columns if c.legend] + list(COMMON_LEGEND)
    if len(measures) == 1:
        lines.append(f"Peak memory (MB): {measures[0]}.")
    elif measures:
        keyed = "; ".join(f"[{i}] {m}" for i, m in enumerate(measures, start=1))
        lines.append(f"Peak memory (MB), measured differently per row: {keyed}.")
    return lines


def prepare_rows(kind: str, agg: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """The rows in display order, best first on the headline metric, with `_label`, `_near_best` (within noise of
    the best, `bench.report.stats`), `_ci95` (the headline's interval half-width) and `_memory_mark`."""
    agg = agg.copy()
    agg["_label"] = list(labels)
    headline = f"{HEADLINE_METRIC.get(kind, 'final_accuracy')}_mean"
    if headline in agg:
        agg = agg.sort_values([headline, "_label"], ascending=[False, True], na_position="last")
        # headline[:-5]: "harmonic_mean_mean" -> "harmonic_mean" (a str.replace of "_mean" would eat both)
        std = agg.get(headline[:-len("_mean")] + "_std", pd.Series(math.nan, index=agg.index))
        # The joint-training upper bounds are not contenders: the best is the best of the other rows, per backbone
        # (a row on another backbone is another experiment, not "within noise" of this one).
        contender = ["joint" not in str(flags).split(", ") for flags in agg["flags"]]
        marks = pd.Series(False, index=agg.index)
        backbones = agg["backbone"].astype(str) if "backbone" in agg else pd.Series("", index=agg.index)
        for _, members in agg.groupby(backbones, sort=False).groups.items():
            index = list(members)
            marks.loc[index] = within_noise_of_best(
                agg.loc[index, headline].astype(float).tolist(), std.loc[index].astype(float).tolist(),
                agg.loc[index, "n_seeds"].astype(int).tolist(),
                eligible=[contender[agg.index.get_loc(i)] for i in index])
        agg["_near_best"] = marks.tolist()
        agg["_ci95"] = [half_width(s, int(n)) for s, n in zip(std.astype(float), agg["n_seeds"])]
    else:
        agg = agg.sort_values("_label")
        agg["_near_best"] = False
    measures = sorted(set(agg["memory_measure"].astype(str)) - {""}) if "memory_measure" in agg else []
    agg["_memory_mark"] = [str(measures.index(m) + 1) if len(measures) > 1 and m in measures else ""
                           for m in (agg["memory_measure"].astype(str) if measures else [""] * len(agg))]
    return agg.reset_index(drop=True)


# -------------------------------------------------------------------------------------- base-to-new average
def _ran(row: Mapping[str, Any]) -> Cell:
    text = f"{row['n_scenarios']} of {row['n_b2n_scenarios']}"
    if row["missing"]:
        text += f" (missing {str(row['missing']).replace(';', ', ')})"
    return text, float(row["n_scenarios"])


B2N_AVERAGE_LEGEND: tuple[str, ...] = (
    "Base / New: accuracy on the base and new classes, averaged over the base-to-new scenarios with equal weight "
    "(each scenario's number is first its mean over seeds).",
    "HM: the harmonic mean of those two averages, 2·base·new / (base + new), as the CoOp/CoCoOp papers report their "
    "average over data sets (not the mean of the per-scenario HM columns).",
    "Scenarios: how many base-to-new scenarios the row ran on. A row that missed any is listed without averages "
    "(\"—\"): averages over different sets of scenarios are not comparable.",
    "Flags and †submitted as in the per-scenario tables.",
)

B2N_AVERAGE_COLUMNS: tuple[Column, ...] = (
    Column("strategy", "Strategy", _text("_label"), False),
    Column("backbone", "Backbone", _text("backbone"), False),
    Column("base_acc", "Base (%)", _plain("base_acc_avg", ".1f", 100.0)),
    Column("new_acc", "New (%)", _plain("new_acc_avg", ".1f", 100.0)),
    Column("harmonic_mean", "HM (%)", _plain("harmonic_mean_of_avgs", ".1f", 100.0)),
    Column("scenarios", "Scenarios", _ran),
    Column("seeds", "Seeds / scenario", _text("seeds_per_scenario"), False),
    Column("flags", "Flags", _text("flags"), False),
)
