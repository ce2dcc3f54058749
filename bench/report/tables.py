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
from bench.eval.metrics import forward_transfer, harmonic_mean
from bench.report.columns import (B2N_AVERAGE_COLUMNS, B2N_AVERAGE_LEGEND, BOUND_FAMILY, HEADLINE_METRIC, MISSING,
                                  Column, legend_lines, prepare_rows, scenario_columns)
from bench.report.intake import csv_safe
from bench.report.published import published_markdown
from bench.report.references import Reference, load_references

__all__ = [
    "ACCURACY_METRICS",
    "HEADLINE_METRIC",
    "VALUE_COLUMNS",
    "B2N_AVERAGE_SLUG",
    "aggregate",
    "base_to_new_average",
    "flags_label",
    "records_to_frame",
    "scenario_name",
    "seed_order",
    "strategy_labels",
    "strategy_name",
    "variant_of",
    "first_line",
    "slug",
    "write_tables",
]

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
    "fwt",
)

# Cost columns, averaged over seeds like the metrics.
COST_COLUMNS: tuple[str, ...] = (
    "trainable_params",
    "backbone_params",
    "trainable_share",
    "params_per_new_task",
    "stored_values",
    "seconds",
    "train_seconds",
    "eval_seconds",
    "robustness_seconds",
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


def variant_of(config: Any) -> str:
    if not isinstance(config, Mapping):
        return ""
    try:
        return config_hash({k: v for k, v in config.items() if k != "seed"})
    except (TypeError, ValueError):
        return ""


def scenario_name(record: Mapping[str, Any]) -> str:
    name = _get(record.get("scenario"), "name") or _get(record.get("config"), "scenario")
    return str(name) if name else ""


def strategy_name(record: Mapping[str, Any]) -> str:
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
    records = list(records)
    names = {r.get("cell_id"): strategy_name(r) for r in records}
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
            "scenario": scenario_name(record),
            "kind": _get(scenario, "kind") or "",
            "num_steps": _num(_get(scenario, "num_steps")),
            "strategy": strategy_name(record),
            "family": _get(strategy, "family") or "",
            "backbone": _get(config, "backbone") or "",
            "variant": variant_of(config),
            "seed": _get(config, "seed"),
            "submitted": bool(record.get("submitted", False)),
            "flags": flags_label(_get(strategy, "flags")) + _flag_notes(record, names),
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
        for key in ("trainable_params", "backbone_params", "trainable_share", "params_per_new_task", "stored_values"):
            row[key] = _num(_get(strategy, key))
        row["seconds"] = _num(_get(timing, "total_seconds"))
        row["train_seconds"] = _num(_get(timing, "train_seconds"))
        row["eval_seconds"] = _num(_get(timing, "eval_seconds"))
        row["robustness_seconds"] = _num(_get(timing, "robustness_seconds"))
        if math.isnan(row.get("fwt", math.nan)):
            row["fwt"] = _fwt(record)
        row["peak_memory_mb"], row["memory_measure"] = _memory(memory)
        rows.append(row)
    columns = [*META_COLUMNS, *ACCURACY_METRICS, *extra_metrics, *COST_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _flag_notes(record: Mapping[str, Any], names: Mapping[Any, str]) -> str:
    """What a row's flags leave unsaid: a replay buffer's size, which family a joint bound bounds, a twin's
    computation (`computed_as`)."""
    notes = []
    flags = _get(record.get("strategy"), "flags") or {}
    size = _get(_get(record.get("config"), "strategy_config"), "memory_size")
    if isinstance(flags, Mapping) and flags.get("replay_memory") and size is not None:
        notes.append(f"buffer {size} images")
    bound = BOUND_FAMILY.get(str(_get(record.get("strategy"), "name") or ""))
    if bound:
        notes.append(f"bounds {bound.replace('frozen features', 'frozen-feature')} learners")
    twin = record.get("computed_as")
    if twin:
        notes.append(f"same computation as {names.get(twin, 'its twin')}")
    return (", " if notes else "") + ", ".join(notes)


def _fwt(record: Mapping[str, Any]) -> float:
    """Forward transfer from the stored matrix and the untrained start row; NaN without either."""
    results = record.get("results")
    if _get(record.get("scenario"), "kind") not in ("class_incremental", "domain_incremental"):
        return math.nan
    try:
        return forward_transfer(results["acc_matrix"], results.get("initial_accuracy"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return math.nan


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
        *[f"{c}_per_seed" for c in values if c in ACCURACY_METRICS],
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
            if col in ACCURACY_METRICS:  # the CSVs carry every seed's value, in the order of `seeds`
                order = sorted(range(len(group)), key=lambda i: seed_order(group["seed"].iat[i]))
                row[f"{col}_per_seed"] = ";".join("" if math.isnan(float(data.iat[i])) else f"{float(data.iat[i]):.6g}"
                                                  for i in order)
        if "harmonic_mean" in values and {"base_acc", "new_acc"} <= set(values):
            # The CoOp/CoCoOp rule: HM of the mean base and mean new accuracy, not the mean of per-seed HMs.
            row["harmonic_mean_mean"] = _hm_or_nan(row["base_acc_mean"], row["new_acc_mean"])
        rows.append(row)
    return pd.DataFrame(rows, columns=out_columns).reset_index(drop=True)


def _seed_text(seed: Any) -> str:
    """A seed as text; pandas turns int seeds into floats once one is missing."""
    if seed is None or (isinstance(seed, float) and math.isnan(seed)):
        return ""
    if isinstance(seed, float) and seed.is_integer():
        return str(int(seed))
    return str(seed)


def seed_order(seed: Any) -> tuple[int, float, str]:
    """Sort key of a seed: numbers in numeric order (10 after 9), then anything else as text."""
    return _seed_sort_key(_seed_text(seed))


def _seed_sort_key(seed: str) -> tuple[int, float, str]:
    try:
        return (0, float(seed), seed)
    except ValueError:
        return (1, 0.0, seed)


def slug(name: str) -> str:
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


def strategy_labels(agg: pd.DataFrame) -> list[str]:
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


def render_rows(columns: Sequence[Column], agg: pd.DataFrame) -> list[list[str]]:
    """The shown text of every cell, row by row (the Markdown table; the HTML page reads the same columns)."""
    return [[column.render(row)[0] for column in columns] for _, row in agg.iterrows()]


def _scenario_markdown(scenario: str, agg: pd.DataFrame, checks: Sequence[str] = (),
                       references: Sequence[Reference] = ()) -> str:
    kind = _scenario_kind(agg, scenario)
    agg = prepare_rows(kind, agg, strategy_labels(agg))  # labels carry "†submitted" where it applies
    columns = scenario_columns(kind, agg)
    headline = HEADLINE_METRIC.get(kind, "")
    backbones = sorted(set(agg["backbone"].astype(str)) - {""})
    measures = sorted(set(agg["memory_measure"].astype(str)) - {""})
    steps = agg["num_steps"].max()
    facts = [f"kind: {kind.replace('_', '-') or 'unknown'}"]
    if not math.isnan(steps):
        facts.append(f"training steps: {int(steps)}")
    if len(backbones) == 1:
        facts.append(f"backbone: {backbones[0]}")
    head_label = next((c.label for c in columns if c.key == headline), headline or "name")
    parts = [f"# Scenario `{scenario}`", ""]
    if checks:
        parts += ["**Sanity checks that fail on this table** (see [sanity.md](sanity.md)):", "",
                  *[f"- FAIL {line}" for line in checks], ""]
    parts += [
        " · ".join(facts) + f" · rows sorted by {head_label}, best first · ± is the standard deviation over seeds, "
        "not an interval.",
        "",
        *[f"- {line}" for line in legend_lines(kind, columns, measures)],
        "",
        _md_table([c.label for c in columns], [c.numeric for c in columns], render_rows(columns, agg)),
        "",
        *published_markdown(scenario, agg, references),
    ]
    return "\n".join(parts)


def _scenario_csv_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """The aggregate rows of one scenario, minus metric columns with no data at all, plus the headline's 95%
    interval half-width (`headline_ci95`) and the "within noise of the best" mark (`within_noise_of_best`)."""
    kind = _scenario_kind(agg, str(agg["scenario"].iat[0])) if len(agg) else ""
    headline = HEADLINE_METRIC.get(kind, "final_accuracy")
    if f"{headline}_mean" in agg:
        ranked = prepare_rows(kind, agg.assign(_row=range(len(agg))), strategy_labels(agg)).set_index("_row")
        agg = agg.assign(headline=headline, headline_ci95=ranked["_ci95"].sort_index().to_numpy(),
                         within_noise_of_best=ranked["_near_best"].sort_index().to_numpy())
    keep = []
    for col in agg.columns:
        for suffix in ("_std", "_per_seed"):
            if col.endswith(suffix):
                mean_col = col[: -len(suffix)] + "_mean"
                if mean_col in agg and agg[mean_col].isna().all():
                    break
        else:
            mean_col = ""
        if mean_col:
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
        sub["_label"] = [label.replace(" †submitted", "") for label in strategy_labels(sub)]
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
    columns = [c for c in B2N_AVERAGE_COLUMNS if show_backbone or c.key != "backbone"]
    average = average.assign(_label=[f"{s} †submitted" if sub else str(s)
                                     for s, sub in zip(average["strategy"], average["submitted"])])
    names = ", ".join(f"`{s}`" for s in sorted({s for text in average["scenarios"] for s in text.split(";")}))
    facts = [f"scenarios: {names}"]
    if not show_backbone:
        facts.append(f"backbone: {average['backbone'].iat[0]}")
    parts = [
        f"# Base-to-new average over {n_total} scenario{'s' if n_total != 1 else ''}",
        "",
        " · ".join(facts) + " · rows sorted by HM (%), best first.",
        "",
        *[f"- {line}" for line in B2N_AVERAGE_LEGEND],
        "",
        _md_table([c.label for c in columns], [c.numeric for c in columns], render_rows(columns, average)),
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
    csv_safe(average).to_csv(csv_path, index=False)
    return [md_path, csv_path]


def first_line(error: Any) -> str:
    if not error:
        return MISSING
    line = str(error).strip().splitlines()[0] if str(error).strip() else MISSING
    return line if len(line) <= 300 else line[:299] + "…"


def _failures_markdown(failed: list[Mapping[str, Any]]) -> str:
    def seed_of(rec: Mapping[str, Any]) -> Any:
        return _get(rec.get("config"), "seed")

    failed = sorted(
        failed,
        key=lambda r: (scenario_name(r), strategy_name(r), str(seed_of(r)), str(r.get("cell_id"))),
    )
    rows = [
        [
            scenario_name(r) or MISSING,
            strategy_name(r) or MISSING,
            str(_get(r.get("config"), "backbone") or MISSING),
            MISSING if seed_of(r) is None else str(seed_of(r)),
            f"`{r.get('cell_id')}`",
            str(r.get("status")),
            first_line(r.get("error")),
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


def _no_scenario_table(elsewhere: int) -> str:
    """The index's line where no classification scenario has finished cells; `elsewhere` finished cells have tables
    of their own (a multimodal-only suite: linked below the line, `index_notes`)."""
    if not elsewhere:
        return "No finished cells yet."
    return f"No classification scenario in these results; the tables of their {elsewhere} finished cells are " \
           "linked below."


def write_tables(records: Iterable[Mapping[str, Any]], out_dir: Path | str,
                 index_notes: Sequence[str] = (), checks: Mapping[str, Sequence[str]] | None = None,
                 references: Sequence[Reference] | None = None, elsewhere: int = 0) -> list[Path]:
    """Write per-scenario ``<scenario>.md``/``.csv``, ``index.md`` and, if needed, ``failures.md`` and the
    base-to-new average (``base_to_new_average.md``/``.csv``). ``index_notes``: lines the index ends with (links to
    tables written elsewhere, such as the robustness table); ``elsewhere``: finished cells tabled elsewhere (the
    multimodal kinds), counted where no scenario table is written.

    Returns the written paths. A stale ``failures.md`` from an earlier call is
    removed when there are no failures any more. CSVs hold the aggregate rows
    (fractions, not percentages) for that scenario. ``checks``: failing sanity checks by scenario, printed at the
    top of that scenario's table (`bench.report.sanity`). ``references``: published numbers (default: the
    committed `references.yaml`); those that name a scenario and backbone of ours are shown beside our number.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = list(records)
    agg = aggregate(records_to_frame(records))
    failed = [r for r in records if r.get("status") != "ok"]
    references = load_references() if references is None else references

    written: list[Path] = []
    index_rows: list[list[str]] = []
    used_slugs: dict[str, str] = {B2N_AVERAGE_SLUG: ""}  # reserved for the base-to-new average table
    for scenario in sorted(set(agg["scenario"].astype(str))):
        sub = agg[agg["scenario"] == scenario].reset_index(drop=True)
        name = slug(scenario)
        if name in used_slugs:
            name = f"{name}-{config_hash({'scenario': scenario})[:6]}"
        used_slugs[name] = scenario
        md_path, csv_path = out / f"{name}.md", out / f"{name}.csv"
        md_path.write_text(_scenario_markdown(scenario, sub, (checks or {}).get(scenario, ()), references),
                           encoding="utf-8")
        csv_safe(_scenario_csv_frame(sub)).to_csv(csv_path, index=False)
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
        else _no_scenario_table(elsewhere),
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
