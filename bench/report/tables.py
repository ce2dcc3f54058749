"""Aggregate per-cell result records into per-scenario Markdown and CSV tables.

Input is the list of records produced by :class:`bench.core.store.ResultStore`.
Numbers are only ever copied or averaged from the records: a metric a record
does not report is shown as "—", never filled in.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.store import config_hash
from bench.eval.metrics import harmonic_mean

__all__ = [
    "ACCURACY_METRICS",
    "KIND_COLUMNS",
    "HEADLINE_METRIC",
    "VALUE_COLUMNS",
    "B2N_AVERAGE_SLUG",
    "aggregate",
    "base_to_new_average",
    "flags_label",
    "records_to_frame",
    "write_tables",
]

MISSING = "—"

# Metrics stored as fractions in [0, 1] (forgetting/BWT may be negative) and
# printed as percentages.
ACCURACY_METRICS: tuple[str, ...] = (
    "final_accuracy",
    "avg_incremental_accuracy",
    "forgetting_avalanche",
    "forgetting_max",
    "bwt",
    "base_acc",
    "new_acc",
    "harmonic_mean",
    "source_acc",
    "target_acc",
)

# Cost columns, averaged over seeds like the metrics.
COST_COLUMNS: tuple[str, ...] = (
    "trainable_params",
    "backbone_params",
    "trainable_share",
    "params_per_new_task",
    "seconds",
    "train_seconds",
    "eval_seconds",
    "peak_memory_mb",
)

VALUE_COLUMNS: tuple[str, ...] = ACCURACY_METRICS + COST_COLUMNS

# Columns that identify one aggregated row. "variant" hashes the config minus
# the seed, so runs with different hyper-parameters are never averaged together.
GROUP_KEYS: tuple[str, ...] = ("scenario", "kind", "strategy", "submitted", "backbone", "variant")

META_COLUMNS: tuple[str, ...] = (
    "cell_id",
    "suite",
    "scenario",
    "kind",
    "num_steps",
    "strategy",
    "family",
    "backbone",
    "variant",
    "seed",
    "submitted",
    "flags",
    "memory_measure",
)

_INCREMENTAL = (
    ("final_accuracy", "Final acc (%)"),
    ("avg_incremental_accuracy", "Avg incr. acc (%)"),
    ("forgetting_avalanche", "Forgetting, avalanche (%)"),
    ("forgetting_max", "Forgetting, max (%)"),
    ("bwt", "BWT (%)"),
)

KIND_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "class_incremental": _INCREMENTAL,
    "domain_incremental": _INCREMENTAL,
    "base_to_new": (("base_acc", "Base (%)"), ("new_acc", "New (%)"), ("harmonic_mean", "HM (%)")),
    "domain_adaptation": (("source_acc", "Source (%)"), ("target_acc", "Target (%)")),
    "joint": (("final_accuracy", "Final acc (%)"),),
}

HEADLINE_METRIC: dict[str, str] = {
    "class_incremental": "final_accuracy",
    "domain_incremental": "final_accuracy",
    "base_to_new": "harmonic_mean",
    "domain_adaptation": "target_acc",
    "joint": "final_accuracy",
}

_METRIC_LABELS: dict[str, str] = {key: label for cols in KIND_COLUMNS.values() for key, label in cols}

_COMMON_LEGEND = (
    "- Accuracy-type columns are percentages. Cells are mean ± sample standard deviation "
    "(ddof=1) over seeds; a single seed shows the mean only. \"—\" means the value was "
    "not reported.",
    "- Trainable params: parameters updated by the strategy, with their share of the "
    "backbone's parameters; params / new task: parameters added per new task.",
    "- Flags: task-id = task identity given at test time; batch-vote = predictions depend "
    "on other samples in the test batch; +k fwd = k extra forward passes per sample; "
    "replay = stores past training images; unlabelled-target = trains on unlabelled "
    "target-domain images; class-names = reads class names (text prompts); joint = trained "
    "on all tasks at once (an upper bound, not a continual learner).",
    "- †submitted = result submitted from outside, not reproduced by this harness.",
)

_INCREMENTAL_LEGEND = (
    "- Final acc: mean accuracy over all tasks' test sets after training the last task "
    "(not the average incremental accuracy).",
    "- Avg incr. acc: mean over steps i of the mean accuracy on tasks 0..i after step i.",
    "- Forgetting, avalanche: avalanche-lib's definition, accuracy on task j just after "
    "training task j minus its final accuracy, averaged over all tasks but the last.",
    "- Forgetting, max: Mammoth/PILOT definition, best accuracy on task j after training "
    "tasks j..T-2 minus its final accuracy, averaged over all tasks but the last; a task "
    "that ends above its earlier best counts negatively (those codebases clip it to 0).",
    "- BWT: backward transfer (Lopez-Paz & Ranzato, GEM), final minus just-after accuracy; "
    "equals minus the avalanche forgetting.",
)

_KIND_LEGEND: dict[str, tuple[str, ...]] = {
    "class_incremental": _INCREMENTAL_LEGEND,
    "domain_incremental": _INCREMENTAL_LEGEND,
    "base_to_new": (
        "- Base / New: accuracy on the base (seen) and new (unseen) classes.",
        "- HM: harmonic mean 2·base·new / (base + new), computed per seed, then averaged.",
    ),
    "domain_adaptation": ("- Source / Target: accuracy on the source and target domains.",),
    "joint": ("- Final acc: mean accuracy over the evaluation sets after joint training.",),
}


def _num(value: Any) -> float:
    """A float for real numbers, NaN for anything else (None, bools, strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


# Boolean comparability flags and their short names, in the order of
# bench.core.strategy.Flags.short() so the tables read like `run_bench.py list`.
_BOOL_FLAGS: tuple[tuple[str, str], ...] = (
    ("task_id_at_test", "task-id"),
    ("batchwise_inference", "batch-vote"),
    ("replay_memory", "replay"),
    ("unlabelled_target", "unlabelled-target"),
    ("class_names", "class-names"),
    ("joint_training", "joint"),
)


def flags_label(flags: Mapping[str, Any] | None) -> str:
    """Short text for a strategy's comparability flags, e.g. "task-id, batch-vote, +1 fwd", or "—"."""
    if not flags:
        return MISSING
    parts = [short for key, short in _BOOL_FLAGS[:2] if flags.get(key)]
    extra = _num(flags.get("extra_forward_passes"))
    if not math.isnan(extra) and extra != 0:
        parts.append(f"+{extra:g} fwd")
    parts += [short for key, short in _BOOL_FLAGS[2:] if flags.get(key)]
    known = {key for key, _ in _BOOL_FLAGS} | {"extra_forward_passes"}
    # Flags we do not know yet are still shown rather than silently dropped.
    for key in sorted(set(flags) - known):
        value = flags[key]
        if value is True:
            parts.append(key.replace("_", "-"))
        elif value not in (None, False, 0, "", [], {}):
            parts.append(f"{key.replace('_', '-')}={value}")
    return ", ".join(parts) if parts else MISSING


def _memory(memory: Any) -> tuple[float, str]:
    """(peak MB, what was measured), accepting both memory layouts records use.

    The runner writes {"peak_mb", "measure"}; the original schema had
    {"peak_rss_mb", "peak_cuda_mb"}. CUDA and RSS peaks measure different
    things, so the measure travels with the number.
    """
    if not isinstance(memory, Mapping):
        return math.nan, ""
    if "peak_mb" in memory:
        peak = _num(memory.get("peak_mb"))
        return peak, (str(memory.get("measure") or "unspecified") if not math.isnan(peak) else "")
    cuda = _num(memory.get("peak_cuda_mb"))
    if not math.isnan(cuda):
        return cuda, "peak CUDA memory"
    rss = _num(memory.get("peak_rss_mb"))
    return rss, ("peak RSS" if not math.isnan(rss) else "")


def _variant(config: Any) -> str:
    if not isinstance(config, Mapping):
        return ""
    try:
        return config_hash({k: v for k, v in config.items() if k != "seed"})
    except (TypeError, ValueError):
        return ""


def _scenario_name(record: Mapping[str, Any]) -> str:
    name = _get(record.get("scenario"), "name") or _get(record.get("config"), "scenario")
    return str(name) if name else ""


def _strategy_name(record: Mapping[str, Any]) -> str:
    strategy = record.get("strategy")
    name = _get(strategy, "label") or _get(strategy, "name") or _get(record.get("config"), "strategy")
    return str(name) if name else ""


def records_to_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record with status "ok", flattened into plain columns.

    Columns: META_COLUMNS, then every known metric (NaN when absent), any extra
    numeric metrics the records carry, then COST_COLUMNS ("seconds" is
    timing.total_seconds).
    """
    rows: list[dict[str, Any]] = []
    extra_metrics: list[str] = []
    for record in records:
        if record.get("status") != "ok":
            continue
        config = record.get("config")
        scenario = record.get("scenario")
        strategy = record.get("strategy")
        timing = record.get("timing")
        memory = record.get("memory")
        metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
        row: dict[str, Any] = {
            "cell_id": record.get("cell_id"),
            "suite": _get(config, "suite") or "",
            "scenario": _scenario_name(record),
            "kind": _get(scenario, "kind") or "",
            "num_steps": _num(_get(scenario, "num_steps")),
            "strategy": _strategy_name(record),
            "family": _get(strategy, "family") or "",
            "backbone": _get(config, "backbone") or "",
            "variant": _variant(config),
            "seed": _get(config, "seed"),
            "submitted": bool(record.get("submitted", False)),
            "flags": flags_label(_get(strategy, "flags")),
        }
        for key, value in metrics.items():
            name = str(key)
            if name not in ACCURACY_METRICS:
                # Keep odd metric names from overwriting identity or cost columns.
                if name in META_COLUMNS or name in COST_COLUMNS:
                    name = f"metric_{name}"
                if name not in extra_metrics:
                    extra_metrics.append(name)
            row[name] = _num(value)
        for key in ("trainable_params", "backbone_params", "trainable_share", "params_per_new_task"):
            row[key] = _num(_get(strategy, key))
        row["seconds"] = _num(_get(timing, "total_seconds"))
        row["train_seconds"] = _num(_get(timing, "train_seconds"))
        row["eval_seconds"] = _num(_get(timing, "eval_seconds"))
        row["peak_memory_mb"], row["memory_measure"] = _memory(memory)
        rows.append(row)
    columns = [*META_COLUMNS, *ACCURACY_METRICS, *extra_metrics, *COST_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _value_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns to average: known metrics, extra metrics, then costs."""
    skip = set(META_COLUMNS)
    return [c for c in frame.columns if c not in skip]


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every metric, one row per (scenario, strategy) variant.

    Rows are grouped by GROUP_KEYS: besides scenario and strategy, the kind,
    submitted flag, backbone and config variant (config minus seed) keep
    different setups apart. Each value column ``c`` becomes ``c_mean`` and
    ``c_std`` (sample std, ddof=1; 0.0 for a single seed). A metric missing in
    any seed gives NaN rather than a mean over the seeds that have it.
    """
    values = _value_columns(frame)
    out_columns = [
        *GROUP_KEYS,
        "family",
        "num_steps",
        "flags",
        "memory_measure",
        "n_seeds",
        "seeds",
        *[f"{c}_{stat}" for c in values for stat in ("mean", "std")],
    ]
    if frame.empty:
        return pd.DataFrame(columns=out_columns)
    rows: list[dict[str, Any]] = []
    for keys, group in frame.groupby(list(GROUP_KEYS), dropna=False, sort=True):
        row: dict[str, Any] = dict(zip(GROUP_KEYS, keys))
        seeds = [text for text in map(_seed_text, group["seed"].tolist()) if text]
        if len(set(seeds)) != len(seeds):
            warnings.warn(
                f"{row['scenario']}/{row['strategy']}: repeated seeds {seeds}; "
                "all of these records are averaged",
                stacklevel=2,
            )
        row["family"] = " / ".join(sorted(set(group["family"].astype(str))))
        row["num_steps"] = group["num_steps"].max()
        row["flags"] = " / ".join(sorted(set(group["flags"].astype(str))))
        measures = sorted(set(group["memory_measure"].astype(str)) - {""})
        row["memory_measure"] = " / ".join(measures)
        row["n_seeds"] = len(group)
        row["seeds"] = ",".join(sorted(seeds, key=_seed_sort_key))
        for col in values:
            data = pd.to_numeric(group[col], errors="coerce")
            mean = data.mean(skipna=False)
            if len(group) == 1:
                std = 0.0 if not math.isnan(mean) else math.nan
            else:
                std = data.std(ddof=1, skipna=False)
            if col == "peak_memory_mb" and len(measures) > 1:
                # Seeds measured different things (e.g. CUDA vs RSS): no honest mean.
                mean = std = math.nan
            row[f"{col}_mean"] = float(mean)
            row[f"{col}_std"] = float(std)
        rows.append(row)
    return pd.DataFrame(rows, columns=out_columns).reset_index(drop=True)


def _seed_text(seed: Any) -> str:
    """A seed as text; pandas turns int seeds into floats once one is missing."""
    if seed is None or (isinstance(seed, float) and math.isnan(seed)):
        return ""
    if isinstance(seed, float) and seed.is_integer():
        return str(int(seed))
    return str(seed)


def _seed_sort_key(seed: str) -> tuple[int, float, str]:
    try:
        return (0, float(seed), seed)
    except ValueError:
        return (1, 0.0, seed)


def _slug(name: str) -> str:
    """A file-name-safe version of a scenario name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return slug or "unnamed"


def _escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], right: Sequence[bool], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(_escape(h) for h in headers) + " |",
        "|" + "|".join("---:" if r else "---" for r in right) + "|",
    ]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: float, fmt: str) -> str:
    text = format(value, fmt)
    # Avoid "-0.0" for tiny negatives that round to zero.
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def _mean_std(mean: Any, std: Any, n: int, fmt: str, scale: float = 1.0) -> str:
    if mean is None or math.isnan(mean):
        return MISSING
    text = _fmt(mean * scale, fmt)
    if n > 1 and std is not None and not math.isnan(std):
        text += " ± " + _fmt(std * scale, fmt)
    return text


def _params_cell(row: pd.Series) -> str:
    count = row["trainable_params_mean"]
    if math.isnan(count):
        return MISSING
    text = _fmt(count, ",.0f")
    if row["trainable_params_std"] > 0:
        text += " ± " + _fmt(row["trainable_params_std"], ",.0f")
    share = row["trainable_share_mean"]
    if not math.isnan(share):
        text += f" ({share * 100:.3g}%)"
    return text


def _scenario_kind(agg: pd.DataFrame, scenario: str) -> str:
    kinds = Counter(agg["kind"].astype(str))
    kind, _ = kinds.most_common(1)[0]
    if len(kinds) > 1:
        warnings.warn(
            f"scenario {scenario!r} has records of several kinds {sorted(kinds)}; "
            f"using {kind!r} to pick columns",
            stacklevel=3,
        )
    return kind


def _metric_columns(kind: str, agg: pd.DataFrame) -> list[tuple[str, str]]:
    if kind in KIND_COLUMNS:
        return list(KIND_COLUMNS[kind])
    # Unknown kind: show whichever known metrics have data.
    return [
        (m, _METRIC_LABELS.get(m, m))
        for m in ACCURACY_METRICS
        if f"{m}_mean" in agg and agg[f"{m}_mean"].notna().any()
    ]


def _strategy_labels(agg: pd.DataFrame) -> list[str]:
    """Strategy names, with a config hash where one name has several variants."""
    base = list(zip(agg["strategy"], agg["submitted"], agg["backbone"]))
    counts = Counter(base)
    labels = []
    for key, variant in zip(base, agg["variant"]):
        name, submitted, _backbone = key
        label = str(name)
        if counts[key] > 1 and variant:
            label += f" [{str(variant)[:8]}]"
        if submitted:
            label += " †submitted"
        labels.append(label)
    return labels


def _scenario_markdown(scenario: str, agg: pd.DataFrame) -> str:
    kind = _scenario_kind(agg, scenario)
    metric_cols = _metric_columns(kind, agg)
    headline = HEADLINE_METRIC.get(kind, metric_cols[0][0] if metric_cols else "")
    agg = agg.copy()
    agg["_label"] = _strategy_labels(agg)
    sort_col = f"{headline}_mean"
    if sort_col in agg:
        agg = agg.sort_values([sort_col, "_label"], ascending=[False, True], na_position="last")
    else:
        agg = agg.sort_values("_label")

    backbones = sorted(set(agg["backbone"].astype(str)) - {""})
    show_backbone = len(backbones) > 1
    measures = sorted(set(agg["memory_measure"].astype(str)) - {""})

    headers = ["Strategy"] + (["Backbone"] if show_backbone else [])
    headers += [label for _, label in metric_cols]
    headers += ["Trainable params", "Params / new task", "Time (s)", "Peak memory (MB)"]
    headers += ["Flags", "Seeds"]
    right = [False] + ([False] if show_backbone else []) + [True] * (len(metric_cols) + 4)
    right += [False, True]

    rows = []
    for _, row in agg.iterrows():
        n = int(row["n_seeds"])
        cells = [row["_label"]] + ([str(row["backbone"]) or MISSING] if show_backbone else [])
        for metric, _ in metric_cols:
            cells.append(
                _mean_std(row.get(f"{metric}_mean"), row.get(f"{metric}_std"), n, ".1f", 100.0)
            )
        cells.append(_params_cell(row))
        cells.append(_mean_std(row["params_per_new_task_mean"], 0.0, 1, ",.0f"))
        cells.append(_mean_std(row["seconds_mean"], row["seconds_std"], n, ".1f"))
        memory = _mean_std(row["peak_memory_mb_mean"], row["peak_memory_mb_std"], n, ".0f")
        if len(measures) > 1 and row["memory_measure"] in measures:
            memory += f" [{measures.index(row['memory_measure']) + 1}]"
        cells.append(memory)
        cells += [str(row["flags"]) or MISSING, str(n)]
        rows.append(cells)

    steps = agg["num_steps"].max()
    facts = [f"kind: {kind.replace('_', '-') or 'unknown'}"]
    if not math.isnan(steps):
        facts.append(f"training steps: {int(steps)}")
    if backbones and not show_backbone:
        facts.append(f"backbone: {backbones[0]}")
    head_label = _METRIC_LABELS.get(headline, headline)
    legend = [*_KIND_LEGEND.get(kind, ()), *_COMMON_LEGEND]
    if len(measures) == 1:
        legend.append(f"- Peak memory (MB): {measures[0]}.")
    elif measures:
        keyed = "; ".join(f"[{i}] {m}" for i, m in enumerate(measures, start=1))
        legend.append(f"- Peak memory (MB), measured differently per row: {keyed}.")
    parts = [
        f"# Scenario `{scenario}`",
        "",
        " · ".join(facts) + f" · rows sorted by {head_label}, best first.",
        "",
        *legend,
        "",
        _md_table(headers, right, rows),
        "",
    ]
    return "\n".join(parts)


def _scenario_csv_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """The aggregate rows of one scenario, minus metric columns with no data at all."""
    keep = []
    for col in agg.columns:
        if col.endswith("_std"):
            mean_col = col[: -len("_std")] + "_mean"
            if mean_col in agg and agg[mean_col].isna().all():
                continue
        if col.endswith("_mean") and agg[col].isna().all():
            continue
        keep.append(col)
    return agg[keep].reset_index(drop=True)


# ----------------------------------------------------------------------------- base-to-new average
B2N_AVERAGE_SLUG = "base_to_new_average"

_B2N_AVERAGE_COLUMNS: tuple[str, ...] = (
    "strategy", "submitted", "backbone", "flags", "n_scenarios", "n_b2n_scenarios", "scenarios", "missing",
    "seeds_per_scenario", "base_acc_avg", "new_acc_avg", "harmonic_mean_of_avgs",
)

_B2N_AVERAGE_LEGEND = (
    "- Base / New: accuracy on the base and new classes, averaged over the base-to-new scenarios with equal "
    "weight (each scenario's number is first its mean over seeds).",
    "- HM: the harmonic mean of those two averages, 2·base·new / (base + new), as the CoOp/CoCoOp papers report "
    "their average over data sets (not the mean of the per-scenario HM columns).",
    "- Scenarios: how many base-to-new scenarios the row ran on. A row that missed any is listed without "
    "averages (\"—\"): averages over different sets of scenarios are not comparable.",
    "- Flags and †submitted as in the per-scenario tables.",
)


def _hm_or_nan(base: float, new: float) -> float:
    return math.nan if math.isnan(base) or math.isnan(new) else harmonic_mean(base, new)


def _seed_counts(counts: Iterable[int]) -> str:
    values = sorted(set(counts))
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def base_to_new_average(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy label, submitted, backbone) across every base-to-new scenario in `agg`.

    `agg` holds seed aggregates (:func:`aggregate`). Base and new accuracy are averaged over scenarios with
    equal weight and HM is the harmonic mean of those averages. That is the CoOp/CoCoOp rule: their "average
    over 11 datasets" rows (../shared/METHODS.md: zero-shot CLIP 69.34 / 74.22 / 71.70, CoOp 82.69 / 63.22 /
    71.66, CoCoOp 80.47 / 71.69 / 75.83) all satisfy HM = 2·b·n / (b + n) of the averaged b and n, which the
    mean of per-data-set HMs would not. Rows that did not run on every base-to-new scenario get NaN averages
    and say which scenarios they miss. Values stay fractions; rows are sorted by HM, best first.
    """
    b2n = agg[agg["kind"].astype(str) == "base_to_new"]
    scenarios = sorted(set(b2n["scenario"].astype(str)))
    if b2n.empty:
        return pd.DataFrame(columns=_B2N_AVERAGE_COLUMNS)
    parts = []
    for scenario in scenarios:
        sub = b2n[b2n["scenario"] == scenario].copy()
        # The per-scenario label: a config hash is added where one name has several variants in that scenario.
        sub["_label"] = [label.replace(" †submitted", "") for label in _strategy_labels(sub)]
        parts.append(sub)
    rows: list[dict[str, Any]] = []
    keys = ["_label", "submitted", "backbone"]
    for (label, submitted, backbone), group in pd.concat(parts).groupby(keys, dropna=False, sort=True):
        ran = sorted(set(group["scenario"].astype(str)))
        complete = ran == scenarios
        base = float(group["base_acc_mean"].mean(skipna=False)) if complete else math.nan
        new = float(group["new_acc_mean"].mean(skipna=False)) if complete else math.nan
        rows.append({
            "strategy": label, "submitted": bool(submitted), "backbone": backbone,
            "flags": " / ".join(sorted(set(group["flags"].astype(str)))),
            "n_scenarios": len(ran), "n_b2n_scenarios": len(scenarios), "scenarios": ";".join(ran),
            "missing": ";".join(s for s in scenarios if s not in ran),
            "seeds_per_scenario": _seed_counts(int(n) for n in group["n_seeds"]),
            "base_acc_avg": base, "new_acc_avg": new, "harmonic_mean_of_avgs": _hm_or_nan(base, new),
        })
    out = pd.DataFrame(rows, columns=_B2N_AVERAGE_COLUMNS)
    return out.sort_values(["harmonic_mean_of_avgs", "strategy"], ascending=[False, True],
                           na_position="last").reset_index(drop=True)


def _b2n_average_markdown(average: pd.DataFrame) -> str:
    n_total = int(average["n_b2n_scenarios"].max())
    show_backbone = average["backbone"].astype(str).nunique() > 1
    headers = ["Strategy"] + (["Backbone"] if show_backbone else [])
    headers += ["Base (%)", "New (%)", "HM (%)", "Scenarios", "Seeds / scenario", "Flags"]
    right = [False] + ([False] if show_backbone else []) + [True, True, True, True, True, False]
    rows = []
    for _, row in average.iterrows():
        label = str(row["strategy"]) + (" †submitted" if row["submitted"] else "")
        ran = f"{row['n_scenarios']} of {row['n_b2n_scenarios']}"
        if row["missing"]:
            ran += f" (missing {row['missing'].replace(';', ', ')})"
        cells = [label] + ([str(row["backbone"]) or MISSING] if show_backbone else [])
        cells += [_mean_std(row[c], 0.0, 1, ".1f", 100.0)
                  for c in ("base_acc_avg", "new_acc_avg", "harmonic_mean_of_avgs")]
        cells += [ran, str(row["seeds_per_scenario"]), str(row["flags"]) or MISSING]
        rows.append(cells)
    names = ", ".join(f"`{s}`" for s in sorted({s for text in average["scenarios"] for s in text.split(";")}))
    facts = [f"scenarios: {names}"]
    if not show_backbone:
        facts.append(f"backbone: {average['backbone'].iat[0]}")
    parts = [
        f"# Base-to-new average over {n_total} scenario{'s' if n_total != 1 else ''}",
        "",
        " · ".join(facts) + " · rows sorted by HM (%), best first.",
        "",
        *_B2N_AVERAGE_LEGEND,
        "",
        _md_table(headers, right, rows),
        "",
    ]
    return "\n".join(parts)


def write_b2n_average(agg: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``base_to_new_average.md``/``.csv`` when `agg` has base-to-new rows; remove stale ones otherwise."""
    md_path, csv_path = out / f"{B2N_AVERAGE_SLUG}.md", out / f"{B2N_AVERAGE_SLUG}.csv"
    average = base_to_new_average(agg)
    if average.empty:
        for path in (md_path, csv_path):
            path.unlink(missing_ok=True)
        return []
    md_path.write_text(_b2n_average_markdown(average), encoding="utf-8")
    average.to_csv(csv_path, index=False)
    return [md_path, csv_path]


def _first_line(error: Any) -> str:
    if not error:
        return MISSING
    line = str(error).strip().splitlines()[0] if str(error).strip() else MISSING
    return line if len(line) <= 300 else line[:299] + "…"


def _failures_markdown(failed: list[Mapping[str, Any]]) -> str:
    def seed_of(rec: Mapping[str, Any]) -> Any:
        return _get(rec.get("config"), "seed")

    failed = sorted(
        failed,
        key=lambda r: (_scenario_name(r), _strategy_name(r), str(seed_of(r)), str(r.get("cell_id"))),
    )
    rows = [
        [
            _scenario_name(r) or MISSING,
            _strategy_name(r) or MISSING,
            str(_get(r.get("config"), "backbone") or MISSING),
            MISSING if seed_of(r) is None else str(seed_of(r)),
            f"`{r.get('cell_id')}`",
            str(r.get("status")),
            _first_line(r.get("error")),
        ]
        for r in failed
    ]
    table = _md_table(
        ["Scenario", "Strategy", "Backbone", "Seed", "Cell", "Status", "Error (first line)"],
        [False, False, False, True, False, False, False],
        rows,
    )
    return "\n".join(
        [
            "# Failed cells",
            "",
            f"{len(failed)} cell(s) did not finish with status \"ok\"; a rerun retries them.",
            "",
            table,
            "",
        ]
    )


def write_tables(records: Iterable[Mapping[str, Any]], out_dir: Path | str,
                 index_notes: Sequence[str] = ()) -> list[Path]:
    """Write per-scenario ``<scenario>.md``/``.csv``, ``index.md`` and, if needed, ``failures.md`` and the
    base-to-new average (``base_to_new_average.md``/``.csv``). ``index_notes``: lines the index ends with (links to
    tables written elsewhere, such as the robustness table).

    Returns the written paths. A stale ``failures.md`` from an earlier call is
    removed when there are no failures any more. CSVs hold the aggregate rows
    (fractions, not percentages) for that scenario.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = list(records)
    agg = aggregate(records_to_frame(records))
    failed = [r for r in records if r.get("status") != "ok"]

    written: list[Path] = []
    index_rows: list[list[str]] = []
    used_slugs: dict[str, str] = {B2N_AVERAGE_SLUG: ""}  # reserved for the base-to-new average table
    for scenario in sorted(set(agg["scenario"].astype(str))):
        sub = agg[agg["scenario"] == scenario].reset_index(drop=True)
        slug = _slug(scenario)
        if slug in used_slugs:
            slug = f"{slug}-{config_hash({'scenario': scenario})[:6]}"
        used_slugs[slug] = scenario
        md_path, csv_path = out / f"{slug}.md", out / f"{slug}.csv"
        md_path.write_text(_scenario_markdown(scenario, sub), encoding="utf-8")
        _scenario_csv_frame(sub).to_csv(csv_path, index=False)
        written += [md_path, csv_path]
        kinds = ", ".join(sorted(set(sub["kind"].astype(str)))).replace("_", "-")
        index_rows.append(
            [
                f"[{scenario}]({md_path.name})",
                kinds or MISSING,
                str(sub["strategy"].nunique()),
                str(int(sub["n_seeds"].sum())),
                f"[csv]({csv_path.name})",
            ]
        )

    average_paths = write_b2n_average(agg, out)
    written += average_paths
    failures_path = out / "failures.md"
    index = [
        "# Results by scenario",
        "",
        _md_table(
            ["Scenario", "Kind", "Strategies", "Finished cells", "Data"],
            [False, False, True, True, False],
            index_rows,
        )
        if index_rows
        else "No finished cells yet.",
        "",
    ]
    if average_paths:
        n_b2n = agg.loc[agg["kind"] == "base_to_new", "scenario"].nunique()
        index += [f"Averaged over the {n_b2n} base-to-new scenario{'s' if n_b2n != 1 else ''}: "
                  f"[base, new and HM]({average_paths[0].name}) ([csv]({average_paths[1].name})).", ""]
    if failed:
        failures_path.write_text(_failures_markdown(failed), encoding="utf-8")
        index += [f"{len(failed)} failed cell(s): see [failures.md](failures.md).", ""]
    elif failures_path.exists():
        failures_path.unlink()
    index += [line for note in index_notes for line in (note, "")]
    index_path = out / "index.md"
    index_path.write_text("\n".join(index), encoding="utf-8")
    written.append(index_path)
    if failed:
        written.append(failures_path)
    return written
