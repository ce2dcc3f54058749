"""Leaderboards of the multimodal task kinds: one table per task kind (its official metrics), one per stream, and
their sanity check, from the records of the seq2seq cells (bench/run/seq2seq_cell.py).

- `multimodal_intake`: the summary metrics recomputed from the stored matrices (`summarize_multimodal`), as
  `bench.report.intake` does for accuracy matrices; a record whose matrices cannot be summarised is shown as failed.
- `write_multimodal_tables`: `mm_<kind>.md/.csv` per task kind (every stream row that has tasks of that kind:
  the metric after the whole stream, right after training the task, untrained start, mean ± sd over seeds, PGD
  kept, parameters, time, memory, decoding) and `mm_streams.md/.csv` (final score, forgetting, the mean metric
  matrix of the primary metrics). Metrics are printed x100 (CIDEr-D and BLEU-4 as in the captioning papers,
  accuracies in %); CSVs keep the stored scale.
- `multimodal_findings`: the sanity check "untrained start (task kinds)": every row, on every task kind of its
  stream, trains above its own untrained start (the primary metric right after training the task minus before any
  training, paired per seed; fail when the 95% interval lies at or below 0, pass when above).
- `multimodal_html`: the same tables as a section of the HTML page.
"""
from __future__ import annotations

import copy
import html
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report.intake import csv_safe
from bench.report.sanity import Finding, Row, table_rows
from bench.report.stats import interval
from bench.run.seq2seq_metrics import METRIC_KEYS, PRIMARY, is_multimodal_record, summarize_multimodal

__all__ = ["CHECK", "multimodal_findings", "multimodal_html", "multimodal_intake", "split_records",
           "write_multimodal_tables"]

CHECK = "untrained start (task kinds)"
KIND_TITLES = {"caption": "Image captioning", "vqa": "Visual question answering", "entailment": "Visual entailment",
               "grounding": "Referring expressions"}
METRIC_TITLES = {"cider": "CIDEr-D", "bleu4": "BLEU-4", "vqa_accuracy": "VQA acc.",
                 "entailment_accuracy": "accuracy", "grounding_accuracy": "acc. @ IoU 0.5"}
TOLERANCE = 1e-6


def multimodal_intake(record: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """A copy of an ok multimodal record with its metrics recomputed from its matrices (a stored metric that
    disagrees is reported in `problems`); failed when they cannot be summarised."""
    record = copy.deepcopy(record)
    cell = record.get("cell_id")
    try:
        computed = summarize_multimodal(record["results"], record.get("robustness"))
    except (KeyError, TypeError, ValueError, IndexError) as error:
        problems.append(f"record {cell}: its metric matrices cannot be summarised ({type(error).__name__}: {error}); "
                        f"shown as failed")
        record.update({"status": "failed", "error": f"unreadable metric matrices: {error}"})
        return record
    for name, value in (record.get("metrics") or {}).items():
        if name in computed and not _same(value, computed[name]):
            problems.append(f"record {cell}: stored {name} {value!r} differs from its matrices' {computed[name]!r}; "
                            f"the matrices' value is shown")
    record["metrics"] = computed
    return record


def _same(a: Any, b: float) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return math.isnan(b)
    return isinstance(a, (int, float)) and not isinstance(a, bool) and abs(a - b) <= TOLERANCE


def split_records(records: Iterable[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(records for the classification tables, finished multimodal records). Failed multimodal records stay with
    the first: the failures page lists every failed cell."""
    classic, multimodal = [], []
    for record in records:
        (multimodal if record.get("status") == "ok" and is_multimodal_record(record) else classic).append(record)
    return classic, multimodal


# ------------------------------------------------------------------------------------------------ numbers
def _stats(values: Sequence[float]) -> tuple[float, float, int]:
    arr = np.asarray([v for v in values if isinstance(v, (int, float)) and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0, int(arr.size)


def _metric(record: Mapping[str, Any], key: str) -> float:
    value = (record.get("metrics") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _get(record: Mapping[str, Any], *path: str) -> Any:
    for part in path:
        record = record.get(part) if isinstance(record, Mapping) else None
    return record


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _spread(stats: tuple[float, float, int], scale: float = 100.0, digits: int = 1) -> str:
    mean, std, n = stats
    if n == 0:
        return "—"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}" if n > 1 else f"{mean * scale:.{digits}f}"


def _kinds(row: Row) -> list[str]:
    return list(dict.fromkeys(_get(row.first, "results", "task_kinds") or []))


def _decoding(row: Row) -> str:
    d = row.first.get("decoding") or {}
    if not d:
        return "—"
    beam = d.get("beam_size")
    text = "greedy" if beam == 1 else f"beam {beam}, length penalty {d.get('length_penalty')}"
    return f"{text}, <= {d.get('max_new_tokens')} tokens"


def _row_values(row: Row, kind: str | None) -> dict[str, Any]:
    """One table row's numbers (fractions; the CSV keeps them, Markdown prints x100)."""
    recs = row.records
    out: dict[str, Any] = {"scenario": row.scenario, "strategy": row.label, "backbone": row.backbone,
                           "method": str(_get(row.first, "strategy", "method") or ""),
                           "n_seeds": len(recs),
                           "seeds": ",".join(str(_get(r, "config", "seed")) for r in recs)}
    if kind is not None:
        for metric in METRIC_KEYS[kind].values():
            for stage in ("final", "learned", "initial"):
                stats = _stats([_metric(r, f"{stage}_{metric}") for r in recs])
                out[f"{stage}_{metric}_mean"], out[f"{stage}_{metric}_std"] = stats[0], stats[1]
    for key in ("final_score", "forgetting", "pgd_kept_official", "corruptions_kept_official"):
        stats = _stats([_metric(r, key) for r in recs])
        out[f"{key}_mean"], out[f"{key}_std"] = stats[0], stats[1]
    for key, path in (("trainable_params", ("strategy", "trainable_params")),
                      ("trainable_share", ("strategy", "trainable_share")),
                      ("seconds", ("timing", "total_seconds")), ("train_seconds", ("timing", "train_seconds")),
                      ("eval_seconds", ("timing", "eval_seconds")),
                      ("robustness_seconds", ("timing", "robustness_seconds")),
                      ("peak_memory_mb", ("memory", "peak_mb"))):
        stats = _stats([_num(_get(r, *path)) for r in recs])
        out[f"{key}_mean"] = stats[0]
    out["decoding"] = _decoding(row)
    return out


def _rows(records: Sequence[Mapping[str, Any]]) -> list[Row]:
    return sorted(table_rows(records), key=lambda r: (r.scenario, r.label, r.backbone))


def kind_frame(records: Sequence[Mapping[str, Any]], kind: str) -> pd.DataFrame:
    """The rows of every stream with tasks of `kind`."""
    return pd.DataFrame([_row_values(row, kind) for row in _rows(records) if kind in _kinds(row)])


def streams_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([_row_values(row, None) for row in _rows(records)])


def _mean_matrix(row: Row) -> list[list[float]]:
    """The primary metric's matrix (each task on its kind's metric), averaged over seeds."""
    stacks = []
    for record in row.records:
        results = record.get("results") or {}
        kinds, matrices = results.get("task_kinds") or [], results.get("matrices") or {}
        stacks.append([[_num(matrices[PRIMARY[k]][i][j]) if matrices.get(PRIMARY[k]) else math.nan
                        for j, k in enumerate(kinds)] for i in range(len(kinds))])
    if not stacks:
        return []
    with warnings.catch_warnings():  # a cell no seed scored (another kind's, or not trained yet) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(stacks, dtype=float), axis=0).tolist()


# ------------------------------------------------------------------------------------------------ output
def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|",
            *("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows)]


def _kind_table(records: Sequence[Mapping[str, Any]], kind: str) -> tuple[list[str], list[list[str]]]:
    metrics = list(METRIC_KEYS[kind].values())
    headers = ["Scenario", "Strategy", *[f"{METRIC_TITLES[m]} (final)" for m in metrics],
               f"{METRIC_TITLES[PRIMARY[kind]]} right after training", f"{METRIC_TITLES[PRIMARY[kind]]} untrained",
               "PGD kept (right after training)", "Corruptions kept (right after training)", "Trained params", "Share",
               "s / cell", "Train s", "Memory MB", "Decoding", "Seeds"]
    rows = []
    for row in _rows(records):
        if kind not in _kinds(row):
            continue
        v = _row_values(row, kind)
        recs = row.records
        finals = [_spread(_stats([_metric(r, f"final_{m}") for r in recs])) for m in metrics]
        rows.append([row.scenario, row.label, *finals,
                     _spread(_stats([_metric(r, f"learned_{PRIMARY[kind]}") for r in recs])),
                     _spread(_stats([_metric(r, f"initial_{PRIMARY[kind]}") for r in recs])),
                     _spread(_stats([_metric(r, "pgd_kept_official") for r in recs])),
                     _spread(_stats([_metric(r, "corruptions_kept_official") for r in recs])),
                     _count(v["trainable_params_mean"]), _share(v["trainable_share_mean"]),
                     _plain(v["seconds_mean"]), _plain(v["train_seconds_mean"]), _plain(v["peak_memory_mb_mean"]),
                     v["decoding"], f"{v['n_seeds']} ({v['seeds']})"])
    return headers, rows


def _streams_table(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["Scenario", "Strategy", "Tasks", "Final score", "Forgetting (lower is better)", "PGD kept",
               "Corruptions kept", "Trained params", "s / cell", "Seeds"]
    rows = []
    for row in _rows(records):
        v = _row_values(row, None)
        recs = row.records
        rows.append([row.scenario, row.label, " → ".join(_get(row.first, "results", "task_kinds") or []),
                     _spread(_stats([_metric(r, "final_score") for r in recs])),
                     _spread(_stats([_metric(r, "forgetting") for r in recs])),
                     _spread(_stats([_metric(r, "pgd_kept_official") for r in recs])),
                     _spread(_stats([_metric(r, "corruptions_kept_official") for r in recs])),
                     _count(v["trainable_params_mean"]), _plain(v["seconds_mean"]), f"{v['n_seeds']} ({v['seeds']})"])
    return headers, rows


def _count(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}"


def _share(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.2f}%"


def _plain(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0f}"


LEGEND = ("Numbers x100 (CIDEr-D and BLEU-4 as the captioning papers print them, accuracies in %), mean ± sd over "
          "seeds. final: after training on the whole stream; right after training: when the stream reached that "
          "task; untrained: the model as the method starts (the start of the sanity check). PGD / corruptions "
          "kept: the official metric under PGD on the image (mean over budgets) / under the common corruptions "
          "(their mean) over the clean metric on the same seeded examples, each task attacked right after "
          "training it (records older than that attacked the model at the end of the stream), averaged over the "
          "stream's tasks (— when the cell ran no generation robustness). Entailment is scored by the likeliest "
          "of yes / no / maybe; the other kinds are generated with the decoding shown.")


def write_multimodal_tables(records: Sequence[Mapping[str, Any]], out_dir: Path | str) -> list[Path]:
    """`mm_<kind>.md/.csv` per task kind present and `mm_streams.md/.csv`; nothing without multimodal records."""
    out = Path(out_dir)
    records = [r for r in records if r.get("status") == "ok" and is_multimodal_record(r)]
    if not records:
        return []
    written = []
    kinds = [k for k in PRIMARY if any(k in _kinds(row) for row in _rows(records))]
    for kind in kinds:
        headers, rows = _kind_table(records, kind)
        md, csv = out / f"mm_{kind}.md", out / f"mm_{kind}.csv"
        md.write_text("\n".join([f"# {KIND_TITLES[kind]} ({kind}): official metrics", "", LEGEND, "",
                                 *_md_table(headers, rows), ""]), encoding="utf-8")
        csv_safe(kind_frame(records, kind)).to_csv(csv, index=False)
        written += [md, csv]
    headers, rows = _streams_table(records)
    lines = ["# Multimodal streams", "", "Final score: each task's primary metric after the whole stream, averaged "
             "over the tasks (CIDEr-D counts as a fraction, 1.0 = 100). Forgetting: right after training a task "
             "minus after the stream, over all but the last task. Per task kind: " + ", ".join(
                 f"[{k}](mm_{k}.md)" for k in kinds) + ".", "", *_md_table(headers, rows), ""]
    for row in _rows(records):
        names = _get(row.first, "results", "eval_names") or []
        matrix = _mean_matrix(row)
        lines += [f"## {row.scenario} / {row.label}: primary metric after each task (x100, mean over seeds)", "",
                  *_md_table(["after training", *names],
                             [[names[i], *("—" if math.isnan(x) else f"{100 * x:.1f}" for x in values)]
                              for i, values in enumerate(matrix)]), ""]
    md, csv = out / "mm_streams.md", out / "mm_streams.csv"
    md.write_text("\n".join(lines), encoding="utf-8")
    csv_safe(streams_frame(records)).to_csv(csv, index=False)
    return [*written, md, csv]


def index_note(paths: Sequence[Path]) -> list[str]:
    """The index's line linking the multimodal tables (none without them)."""
    kinds = [p for p in paths if p.suffix == ".md" and p.name != "mm_streams.md"]
    if not paths:
        return []
    return ["Multimodal task kinds (seq2seq methods, official metrics): " + ", ".join(
        f"[{p.stem[3:]}]({p.name})" for p in kinds) + "; streams: [mm_streams.md](mm_streams.md)."]


def multimodal_findings(records: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """The check `CHECK` on every multimodal row and task kind (see the module docstring)."""
    out = []
    for row in _rows([r for r in records if is_multimodal_record(r)]):
        for kind in _kinds(row):
            metric = PRIMARY[kind]
            gains = [_metric(r, f"learned_{metric}") - _metric(r, f"initial_{metric}") for r in row.records]
            stats = _stats(gains)
            if stats[2] == 0:
                continue
            low, high = interval(*stats)
            verdict = "pass" if low > 0 else ("fail" if high <= 0 else "undecided")
            start = _stats([_metric(r, f"initial_{metric}") for r in row.records])
            after = _stats([_metric(r, f"learned_{metric}") for r in row.records])
            out.append(Finding(CHECK, row.scenario, f"{row.name} [{kind}]", verdict,
                               f"{METRIC_TITLES[metric]} right after training {_spread(after)} vs untrained "
                               f"{_spread(start)}: gain {_spread(stats)} (x100, n={stats[2]})"))
    return out


def multimodal_html(records: Sequence[Mapping[str, Any]]) -> str:
    """The tables as one HTML section (empty without multimodal records)."""
    records = [r for r in records if r.get("status") == "ok" and is_multimodal_record(r)]
    if not records:
        return ""
    esc = html.escape
    parts = ['<section id="multimodal"><h2>Multimodal task kinds (official metrics)</h2>',
             f'<p class="note">{esc(LEGEND)}</p>']
    tables = [(f"{KIND_TITLES[k]} ({k})", *_kind_table(records, k)) for k in PRIMARY
              if any(k in _kinds(row) for row in _rows(records))]
    tables.append(("Streams", *_streams_table(records)))
    for title, headers, rows in tables:
        parts.append(f"<h3>{esc(title)}</h3><div class=\"scroll\"><table><thead><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead><tbody>"
                     + "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
                     + "</tbody></table></div>")
    return "".join(parts) + "</section>"
