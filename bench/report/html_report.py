"""One static, offline HTML page of every leaderboard: `leaderboards/index.html`.

Single file, no server, nothing fetched: tables sortable by any column (inline vanilla JS), plots drawn with
matplotlib and embedded as base64 PNG data URIs. Rows are the same seed aggregates as the Markdown tables
(`bench.report.tables.aggregate`); published numbers appear only in their own labelled section (`bench.report.references`).
Every string from a record is HTML-escaped: a submitted record is data, and never becomes markup or script.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report.columns import (B2N_AVERAGE_COLUMNS, B2N_AVERAGE_LEGEND, HEADLINE_METRIC, METRIC_LABELS, MISSING,
                                  Column, legend_lines, percent_column, prepare_rows, scenario_columns)
from bench.report.references import Reference, by_protocol, load_references
from bench.report.tables import (B2N_AVERAGE_SLUG, aggregate, base_to_new_average, first_line, records_to_frame,
                                 scenario_name, slug, strategy_labels, strategy_name, variant_of)

INCREMENTAL = ("class_incremental", "domain_incremental")
REFERENCE_TITLE = "Published reference numbers (not measured by this suite)"


# --------------------------------------------------------------------------------------- robustness columns
def _budget(text: str) -> float:
    try:
        return float(Fraction(str(text).replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        return math.inf


def _fraction(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def robustness_values(record: Mapping[str, Any]) -> dict[str, float]:
    """Flat robustness numbers of a record ({} without robustness): rob_clean, rob_fgsm@eps, rob_pgd@eps,
    rob_autoattack@eps, rob_corruptions."""
    rob = record.get("robustness")
    if not isinstance(rob, Mapping):
        return {}
    out = {"rob_clean": _fraction(rob.get("clean"))}
    for attack in ("fgsm", "pgd"):
        for eps, acc in (rob.get(attack) or {}).items():
            out[f"rob_{attack}@{eps}"] = _fraction(acc)
    auto = rob.get("autoattack")
    if isinstance(auto, Mapping):
        out[f"rob_autoattack@{auto.get('eps', '?')}"] = _fraction(auto.get("acc"))
    corruptions = rob.get("corruptions")
    if isinstance(corruptions, Mapping):
        out["rob_corruptions"] = _fraction(corruptions.get("mean"))
    return out


def _robustness_label(column: str) -> str:
    if column == "rob_clean":
        return "Rob. subset clean (%)"
    if column == "rob_corruptions":
        return "Corruptions, mean (%)"
    attack, _, eps = column[len("rob_"):].partition("@")
    name = {"fgsm": "FGSM", "pgd": "PGD", "autoattack": "AutoAttack"}.get(attack, attack)
    return f"{name} ε={eps} (%)"


def _robustness_order(column: str) -> tuple:
    attack, _, eps = column[len("rob_"):].partition("@")
    rank = {"clean": 0, "fgsm": 1, "pgd": 2, "autoattack": 3, "corruptions": 4}.get(attack, 5)
    return rank, _budget(eps) if eps else 0.0


# ------------------------------------------------------------------------------------------------- rows
def robustness_columns(agg: pd.DataFrame) -> list[Column]:
    """The robustness columns with data, in attack order (the HTML page adds them to the shared columns)."""
    robust = sorted((c[: -len("_mean")] for c in agg.columns if c.startswith("rob_") and c.endswith("_mean")
                     and agg[c].notna().any()), key=_robustness_order)
    return [percent_column(c, _robustness_label(c)) for c in robust]


def _frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Seed aggregates of every finished record, robustness numbers included."""
    frame = records_to_frame(records)
    robust = {r.get("cell_id"): robustness_values(r) for r in records if r.get("status") == "ok"}
    keys = sorted({k for values in robust.values() for k in values}, key=_robustness_order)
    for key in keys:
        frame[key] = [robust.get(cell, {}).get(key, math.nan) for cell in frame["cell_id"]]
    agg = aggregate(frame)
    if agg.empty:
        return agg
    agg["_label"] = ""
    for scenario in agg["scenario"].unique():
        mask = agg["scenario"] == scenario
        agg.loc[mask, "_label"] = [label.replace(" †submitted", "") for label in strategy_labels(agg[mask])]
    return agg


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# The columns a table shows by default: the row's name, the headline metric (its cell carries the spread), the
# within-noise mark, cost (parameters, time) and comparability flags; the rest appear with "all columns".
COMPACT = ("strategy", "backbone", "near_best", "trainable_params", "seconds", "flags", "n_seeds")


def compact_keys(kind: str) -> set[str]:
    """The keys of the columns a table of `kind` shows before "all columns" is ticked."""
    return {*COMPACT, HEADLINE_METRIC.get(kind, "final_accuracy")}


def table_html(scenario: str, kind: str, agg: pd.DataFrame) -> str:
    """One scenario's sortable table: the shared columns (`bench.report.columns`) plus the robustness columns."""
    agg = prepare_rows(kind, agg, [label.replace(" †submitted", "") for label in strategy_labels(agg)])
    return board_html(scenario, scenario_columns(kind, agg, robustness_columns(agg)), agg, compact_keys(kind))


def board_html(name: str, columns: Sequence[Column], agg: pd.DataFrame, compact: set[str] | None = None) -> str:
    """A sortable table: one row per row of `agg` (which needs `_label` and `submitted`), in its order. Columns
    whose key is not in `compact` get the class `extra` (hidden until the section's "all columns" box is ticked)."""
    extra = {c.key for c in columns if compact is not None and c.key not in compact}

    def class_of(column: Column, numeric: bool = False) -> str:
        classes = (["num"] if numeric and column.numeric else []) + (["extra"] if column.key in extra else [])
        return f' class="{" ".join(classes)}"' if classes else ""

    head = "".join(f'<th data-type="{"num" if c.numeric else "text"}" data-key="{_esc(c.key)}" scope="col"'
                   f'{class_of(c)} title="click to sort">{_esc(c.label)}</th>' for c in columns)
    rows = []
    for _, row in agg.iterrows():
        cells = []
        for column in columns:
            text, value = column.render(row)
            if column.key == "strategy" and row["submitted"]:
                text_html = f'{_esc(text)} <span class="badge" title="submitted from outside, not reproduced ' \
                            f'by this harness">†submitted</span>'
            else:
                text_html = _esc(text)
            sort_value = "" if value is None else (repr(value) if column.numeric else str(value).lower())
            cells.append(f'<td data-value="{_esc(sort_value)}"{class_of(column, numeric=True)}>{text_html}</td>')
        css = ' class="submitted"' if row["submitted"] else ""
        rows.append(f'<tr data-strategy="{_esc(row["_label"])}"{css}>{"".join(cells)}</tr>')
    return (f'<table class="board" data-scenario="{_esc(name)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


# ------------------------------------------------------------------------------------------------ plots
def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# Figures are drawn at twice the resolution they are shown at (`_figure` halves the width): sharp on high-density
# screens and when the browser scales a figure up to the page's width.
DPI = 160
SCALE = 2


def _png_width(uri: str) -> int:
    """The pixel width of a data-URI PNG (its IHDR chunk: bytes 16-20)."""
    head = base64.b64decode(uri.split(",", 1)[1][:44])
    return int.from_bytes(head[16:20], "big")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display: files only
    matplotlib.rcParams["text.parse_math"] = False  # labels are literal text: two "$" are not mathtext
    import matplotlib.pyplot as plt

    return plt


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: fewer (or as few) parameters and higher accuracy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _panel_label(row: pd.Series, backbones: int) -> str:
    label = str(row["_label"]) + (" †" if row["submitted"] else "")
    return f"{label} ({row['backbone']})" if backbones > 1 else label


def plot_pareto(agg: pd.DataFrame, kind: str) -> str | None:
    """Accuracy and trainable parameters side by side, one pair of panels per backbone (rows sorted by accuracy;
    strategies are tick labels, so no label overlaps another; Pareto-front rows in green, marked ★)."""
    metric = HEADLINE_METRIC.get(kind, "final_accuracy")
    if f"{metric}_mean" not in agg:
        return None
    rows = agg[agg["trainable_params_mean"].notna() & agg[f"{metric}_mean"].notna()]
    if rows.empty:
        return None
    plt = _pyplot()
    backbones = sorted(set(rows["backbone"].astype(str)))
    heights = [max(2, (rows["backbone"].astype(str) == b).sum()) for b in backbones]
    fig, axes = plt.subplots(len(backbones), 2, figsize=(9.5, 0.9 + 0.28 * sum(heights) + 0.5 * len(backbones)),
                             squeeze=False, gridspec_kw={"height_ratios": heights, "width_ratios": [3, 2]})
    for (acc_ax, par_ax), backbone in zip(axes, backbones):
        sub = rows[rows["backbone"].astype(str) == backbone].sort_values(f"{metric}_mean")
        y = np.arange(len(sub))
        acc = sub[f"{metric}_mean"].to_numpy(float) * 100
        err = np.nan_to_num(sub[f"{metric}_std"].to_numpy(float) * 100)
        params = np.maximum(sub["trainable_params_mean"].to_numpy(float), 1.0)  # log axis: 0 trainable shows as 1
        on_front = np.zeros(len(sub), bool)
        on_front[pareto_front(list(zip(params, acc)))] = True
        colours = np.where(on_front, "tab:green", "tab:blue")
        acc_ax.errorbar(acc, y, xerr=err, fmt="none", ecolor="grey", lw=1)
        acc_ax.scatter(acc, y, c=colours, zorder=3)
        par_ax.scatter(params, y, c=colours, zorder=3)
        labels = [("★ " if front else "") + _panel_label(row, 1) for front, (_, row) in zip(on_front, sub.iterrows())]
        acc_ax.set_yticks(y, labels, fontsize=8)
        par_ax.set_yticks(y, [""] * len(y))
        par_ax.set_xscale("log")
        acc_ax.set_title(f"{backbone}: {METRIC_LABELS.get(metric, metric)} (mean ± std over seeds)", fontsize=9)
        par_ax.set_title(f"{backbone}: trainable parameters (log)", fontsize=9)
        for ax in (acc_ax, par_ax):
            ax.grid(alpha=0.3)
            ax.tick_params(axis="x", labelsize=8)
            ax.set_ylim(-0.7, len(sub) - 0.3)
    _share_x(axes[:, 0])  # one accuracy scale for every backbone: a 94-95% panel must not look like a 10-100% one
    _share_x(axes[:, 1])
    fig.tight_layout()
    return _png(fig)


def _share_x(axes: Sequence[Any]) -> None:
    """The same x range on every axis (their union), as `sharex` would give, set after each was drawn."""
    lows, highs = zip(*(ax.get_xlim() for ax in axes))
    for ax in axes:
        ax.set_xlim(min(lows), max(highs))


def _config_difference(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """For records of one strategy that differ in config: "field=value" of the fields whose values differ."""
    keys = sorted({k for c in configs for k in c})
    differing = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    return [", ".join(f"{k}={c.get(k)}" for k in differing) for c in configs]


def plot_groups(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Finished records of one scenario grouped like the table rows, labelled "strategy (backbone)" where backbones
    mix, and with the config fields that differ where one strategy has several variants (never a config hash)."""
    groups: dict[tuple, list] = {}
    for record in records:
        key = (strategy_name(record), bool(record.get("submitted")),
               str((record.get("config") or {}).get("backbone", "")), variant_of(record.get("config")))
        groups.setdefault(key, []).append(record)
    mixed = len({k[2] for k in groups}) > 1
    by_name: dict[tuple, list[tuple]] = {}
    for key in groups:
        by_name.setdefault((key[0], key[1], key[2]), []).append(key)
    labels: dict[tuple, str] = {}
    for (name, submitted, backbone), keys in by_name.items():
        base = f"{name} ({backbone})" if mixed else name
        configs = [dict((groups[k][0].get("config") or {}).get("strategy_config") or {}) for k in keys]
        texts = _config_difference(configs) if len(keys) > 1 else [""] * len(keys)
        for key, text in zip(keys, texts):
            labels[key] = base + (f" [{text}]" if text else "") + (" †" if submitted else "")
    return {labels[key]: groups[key] for key in sorted(groups, key=lambda k: natural_key(labels[k]))}


def natural_key(value: Any) -> tuple:
    """A sort key that orders the numbers inside strings by value: `length=8` before `length=32`."""
    if isinstance(value, tuple):
        return tuple(natural_key(v) for v in value)
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))


def _mean_matrix(records: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    mats = []
    for record in records:
        try:
            mats.append(np.asarray(record["results"]["acc_matrix"], dtype=float))
        except (KeyError, TypeError, ValueError):
            continue
    shapes = {m.shape for m in mats}
    if not mats or len(shapes) != 1 or mats[0].ndim != 2:
        return None
    return np.mean(mats, axis=0)


def plot_incremental(groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """Accuracy on the tasks seen so far after each step, and one accuracy-matrix heatmap per strategy."""
    matrices = {label: m for label, recs in groups.items() if (m := _mean_matrix(recs)) is not None
                and m.shape[0] == m.shape[1]}
    if not matrices:
        return []
    plt = _pyplot()
    curves = {label: [m[i, : i + 1].mean() * 100 for i in range(m.shape[0])] for label, m in matrices.items()}
    fig, axes = _small_multiples(plt, len(curves))
    for ax, (label, curve) in zip(axes.flat, curves.items()):
        for other in curves.values():  # every other row in grey: the panel reads against the whole field
            ax.plot(range(1, len(other) + 1), other, color="#d0d7de", lw=0.8, zorder=1)
        ax.plot(range(1, len(curve) + 1), curve, color="tab:blue", marker="o", ms=3, zorder=3)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_xticks(range(1, len(curve) + 1))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    _finish_small_multiples(fig, axes, len(curves), "after training step", "mean acc. on tasks seen (%)")
    plots = [("Accuracy after each task (mean over seeds)", _png(fig))]
    cols = min(4, len(matrices))
    rows = math.ceil(len(matrices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax, (label, m) in zip(axes.flat, matrices.items()):
        ax.imshow(m * 100, vmin=0, vmax=100, cmap="viridis")
        if m.shape[0] <= 6:
            for (i, j), value in np.ndenumerate(m * 100):
                if np.isnan(value):  # not evaluated (a task not trained yet): left blank
                    continue
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if value < 60 else "black")
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        ax.set_xticklabels(range(1, m.shape[1] + 1))
        ax.set_yticklabels(range(1, m.shape[0] + 1))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("eval task", fontsize=8)
        ax.set_ylabel("after step", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(matrices):]:
        ax.axis("off")
    fig.tight_layout()
    plots.append(("Accuracy matrices A[step, task] (%) (mean over seeds)", _png(fig)))
    return plots


LABEL_MOVES = 500  # adjustText iterations for the base-vs-new labels (about 0.6 s for 13 crowded labels here)


def plot_base_new(agg: pd.DataFrame) -> str | None:
    fig = base_new_figure(agg)
    return None if fig is None else _png(fig)


def base_new_figure(agg: pd.DataFrame) -> Any:
    """Base against new accuracy, one labelled point per row, labels moved apart (adjustText) where rows sit close
    (coop, cocoop and zero-shot CLIP land within a point of each other); None without base-to-new rows."""
    rows = agg[agg["base_acc_mean"].notna() & agg["new_acc_mean"].notna()] if "base_acc_mean" in agg else agg[:0]
    if rows.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    base = np.linspace(0.005, 1, 200)
    for hm in (0.2, 0.4, 0.6, 0.8):
        with np.errstate(divide="ignore", invalid="ignore"):
            new = hm * base / (2 * base - hm)
        keep = (2 * base > hm) & (new <= 1) & (new >= 0)
        ax.plot(base[keep] * 100, new[keep] * 100, color="grey", lw=0.6, ls=":")
        ax.annotate(f"HM {hm * 100:.0f}", (100, hm / (2 - hm) * 100), fontsize=8, color="grey")
    submitted = rows["submitted"].to_numpy(bool)
    b, n = rows["base_acc_mean"].to_numpy(float) * 100, rows["new_acc_mean"].to_numpy(float) * 100
    ax.scatter(b[~submitted], n[~submitted], color="tab:blue", label="measured", zorder=3)
    if submitted.any():
        ax.scatter(b[submitted], n[submitted], facecolors="none", edgecolors="tab:red", label="submitted", zorder=3)
    ax.set_xlim(0, 105)
    ax.set_ylim(0, 105)
    ax.set_xlabel("base accuracy (%)")
    ax.set_ylabel("new accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower left")
    texts = [ax.text(xi, yi, str(label), fontsize=8, ha="right" if xi > 60 else "left")  # toward the middle
             for xi, yi, label in zip(b, n, rows["_label"])]
    if len(texts) > 1:
        from adjustText import adjust_text

        # A fixed number of moves: without one adjustText stops after 1 s of them, so a crowded chart (13 labels
        # on ofa_ablation's b2n_glyphs: 787 or 829 moves) came out different on every build and machine. Its
        # nudges use a fixed-seed generator, so a fixed count makes the picture a function of the rows.
        adjust_text(texts, x=b, y=n, ax=ax, expand=(1.2, 1.4), iter_lim=LABEL_MOVES,
                    arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})
    return fig


def _small_multiples(plt: Any, count: int, cols: int = 6) -> tuple[Any, np.ndarray]:
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    return plt.subplots(rows, cols, figsize=(2.1 * cols + 0.6, 1.9 * rows + 0.6), squeeze=False, sharex=True,
                        sharey=True)


def _finish_small_multiples(fig: Any, axes: np.ndarray, count: int, xlabel: str, ylabel: str) -> None:
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    fig.supxlabel(xlabel, fontsize=9)
    fig.supylabel(ylabel, fontsize=9)
    fig.tight_layout()


def plot_robustness(groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
    """Accuracy against the L-inf budget, one small panel per row: PGD solid, FGSM dashed, from clean accuracy."""
    panels = []
    for label, members in groups.items():
        values = [v for v in (robustness_values(r) for r in members) if v]
        lines = []
        for attack, style, colour in (("pgd", "-", "tab:red"), ("fgsm", "--", "tab:blue")):
            keys = sorted({k for v in values for k in v if k.startswith(f"rob_{attack}@")}, key=_robustness_order)
            if keys:
                xs = [0.0] + [_budget(k.partition("@")[2]) * 255 for k in keys]
                ys = [np.nanmean([v.get(k, math.nan) for v in values]) * 100 for k in ["rob_clean", *keys]]
                lines.append((attack.upper(), style, colour, xs, ys))
        if lines:
            panels.append((label, lines))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = _small_multiples(plt, len(panels))
    for ax, (label, lines) in zip(axes.flat, panels):
        for name, style, colour, xs, ys in lines:
            ax.plot(xs, ys, style, color=colour, marker="o", ms=3, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, 100)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", fontsize=9, ncol=2, frameon=False)
    _finish_small_multiples(fig, axes, len(panels), "L-inf budget ε (× 1/255)", "accuracy (%)")
    fig.subplots_adjust(top=1 - 0.6 / fig.get_figheight())  # room for the one legend above the panels
    return _png(fig)


def _figure(caption: str, uri: str | None) -> str:
    if not uri:
        return ""
    width = _png_width(uri) // SCALE
    return (f'<figure style="max-width:{width}px"><img src="{uri}" width="{width}" alt="{_esc(caption)}">'
            f'<figcaption>{_esc(caption)}</figcaption></figure>')


# ------------------------------------------------------------------------------------------------- page
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1400px;padding:0 1rem;
color:#1b1f24}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .5rem}
th{background:#f6f8fa;cursor:pointer;user-select:none;white-space:nowrap}th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.submitted{background:#fff8e6}.badge{color:#9a3412;font-size:.75rem}.facts,.note{color:#57606a;font-size:.85rem}
figure{display:inline-block;margin:.5rem 1rem .5rem 0;vertical-align:top}figcaption{font-size:.8rem;color:#57606a}
img{max-width:100%}section.references{background:#f6f8fa;border:2px dashed #8c959f;padding:0 1rem 1rem;
margin-top:2.5rem}section.references h2{border:none}nav a{margin-right:.8rem}.scroll{overflow-x:auto}
.sanity{background:#ffebe9;border:1px solid #cf222e;padding:.3rem .8rem;font-size:.85rem;margin:.5rem 0}
.verdict-holds{color:#1a7f37;font-weight:600}.verdict-fails{color:#cf222e;font-weight:600}
.verdict-undecided{color:#9a6700;font-weight:600}.verdict-not-run{color:#57606a}
.verdict-depends-on-the-scenario,.verdict-depends-on-the-method{color:#8250df;font-weight:600}
.verdict-cannot-decide,.verdict-elsewhere{color:#57606a}
.all-columns:not(:checked)~.scroll .extra{display:none}.all-columns{margin:0 .3rem 0 0}
table.board th:first-child,table.board td:first-child{position:sticky;left:0;z-index:1;background:#fff;
box-shadow:inset -1px 0 #d0d7de}table.board th:first-child{background:#f6f8fa;z-index:2}
table.board tr.submitted td:first-child{background:#fff8e6}img{height:auto}
"""

# Numeric columns sort by their data-value; "—" (an empty data-value) always goes last, whichever the direction.
_SCRIPT = """
(function () {
  function sortTable(table, index, th) {
    var numeric = th.dataset.type === "num";
    var current = th.getAttribute("aria-sort");
    var descending = current ? current === "ascending" : numeric;  // first click: numbers high-first, text A-Z
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].dataset.value, y = b.cells[index].dataset.value;
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.addEventListener("click", function () { sortTable(table, index, th); });
    });
  });
})();
"""


def _legend(kind: str, agg: pd.DataFrame) -> str:
    measures = sorted(set(agg["memory_measure"].astype(str)) - {""})
    items = [*legend_lines(kind, scenario_columns(kind, agg), measures),
             "Robustness columns (when run): accuracy on a fixed seeded subset of each evaluation set; FGSM/PGD "
             "count an image only if it survives that budget and every smaller one; corruptions average the "
             "ImageNet-C corruptions over severities."]
    return "<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in items) + "</ul>"


def checks_html(lines: Sequence[str]) -> str:
    """The failing sanity checks of one table, shown above it (`bench.report.sanity`)."""
    if not lines:
        return ""
    items = "".join(f"<li>{_esc(line)}</li>" for line in lines)
    return (f'<div class="sanity"><strong>Sanity checks that fail on this table</strong> '
            f'(<a href="sanity.md">rules and all verdicts</a>):<ul>{items}</ul></div>')


def scenario_section(scenario: str, agg: pd.DataFrame, records: Sequence[Mapping[str, Any]],
                     checks: Sequence[str] = ()) -> str:
    kind = agg["kind"].astype(str).mode().iat[0]
    steps = agg["num_steps"].max()
    backbones = sorted(set(agg["backbone"].astype(str)) - {""})
    facts = [f"kind: {kind.replace('_', '-')}"]
    if not math.isnan(steps):
        facts.append(f"training steps: {int(steps)}")
    if len(backbones) == 1:
        facts.append(f"backbone: {backbones[0]}")
    facts.append(f"{len(agg)} rows; click a column header to sort, click again to reverse")
    groups = plot_groups(records)
    figures = [_figure("Headline accuracy and trainable parameters per backbone; green ★: on the Pareto front "
                       "(no other row of that backbone has as few parameters and higher accuracy)",
                       plot_pareto(agg, kind))]
    if kind in INCREMENTAL:
        figures += [_figure(caption, uri) for caption, uri in plot_incremental(groups)]
    if kind == "base_to_new":
        figures.append(_figure("Base against new accuracy; dotted: harmonic-mean iso-curves", plot_base_new(agg)))
    figures.append(_figure("Robustness, one panel per row: accuracy against the attack budget (PGD solid red, "
                           "FGSM dashed blue; ε = 0 is clean accuracy)", plot_robustness(groups)))
    return (f'<section class="scenario" id="scenario-{_esc(slug(scenario))}"><h2>Scenario <code>{_esc(scenario)}'
            f'</code></h2>{checks_html(checks)}<p class="facts">{_esc(" · ".join(facts))}</p>'
            f'{_all_columns_box(scenario)}<div class="scroll">{table_html(scenario, kind, agg)}</div>'
            f'<details><summary>Column legend</summary>{_legend(kind, agg)}</details>'
            f'<div class="plots">{"".join(figures)}</div></section>')


def _all_columns_box(scenario: str) -> str:
    """The box that shows a table's other columns: CSS alone (`.all-columns:checked ~ .scroll .extra`), no script."""
    box = f"all-columns-{slug(scenario)}"
    return (f'<input type="checkbox" class="all-columns" id="{_esc(box)}"><label for="{_esc(box)}" class="note">'
            f'all columns (metrics, times, memory, robustness)</label>')


def b2n_average_section(agg: pd.DataFrame) -> str:
    """Base, new and HM averaged over every base-to-new scenario (`bench.report.tables.base_to_new_average`)."""
    average = base_to_new_average(agg) if not agg.empty else agg
    if average.empty:
        return ""
    average = average.assign(_label=average["strategy"])
    n_total = int(average["n_b2n_scenarios"].max())
    names = ", ".join(sorted({s for text in average["scenarios"] for s in text.split(";")}))
    legend = "<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in B2N_AVERAGE_LEGEND) + "</ul>"
    return (f'<section class="scenario" id="{B2N_AVERAGE_SLUG}"><h2>Base-to-new average over {n_total} '
            f'scenario{"s" if n_total != 1 else ""}</h2><p class="facts">scenarios: {_esc(names)} · rows sorted by HM, '
            f'best first; click a column header to sort</p><div class="scroll">'
            f'{board_html(B2N_AVERAGE_SLUG, list(B2N_AVERAGE_COLUMNS), average)}</div>'
            f'<details open><summary>How the average is computed</summary>{legend}</details></section>')


def references_section(references: Sequence[Reference]) -> str:
    if not references:
        return ""
    parts = [f'<section class="references" id="references"><h2>{_esc(REFERENCE_TITLE)}</h2><p class="note">'
             "Numbers copied from the papers named, measured on their data, backbones and code: not on this suite's "
             "scenarios. They are never mixed into the measured tables above and are not comparable with them "
             "row for row.</p>"]
    for protocol, refs in by_protocol(list(references)).items():
        rows = "".join(f"<tr><td>{_esc(r.method)}</td><td>{_esc(r.strategy or MISSING)}</td><td>{_esc(r.paper)}"
                       f"</td><td>{_esc(r.backbone or MISSING)}</td><td>{_esc(r.metric)}</td><td class=num>"
                       f"{_esc(r.value)}{_esc(' ' + r.unit if r.unit else '')}</td><td>{_esc(r.note or MISSING)}"
                       "</td></tr>" for r in refs)
        parts.append(f'<h3>Protocol: {_esc(protocol)} (published, not measured here)</h3><table class="reference">'
                     "<thead><tr><th>Method</th><th>Our strategy</th><th>Paper</th><th>Backbone</th><th>Metric</th>"
                     f"<th>Published value</th><th>Note</th></tr></thead><tbody>{rows}</tbody></table>")
    return "".join(parts) + "</section>"


def failures_section(failed: Sequence[Mapping[str, Any]]) -> str:
    if not failed:
        return ""
    rows = "".join(f"<tr><td>{_esc(scenario_name(r) or MISSING)}</td><td>{_esc(strategy_name(r) or MISSING)}</td>"
                   f"<td><code>{_esc(r.get('cell_id'))}</code></td><td>{_esc(first_line(r.get('error')))}</td></tr>"
                   for r in failed)
    return (f'<section id="failures"><h2>Failed cells ({len(failed)})</h2><p class="note">A rerun retries them.</p>'
            "<table><thead><tr><th>Scenario</th><th>Strategy</th><th>Cell</th><th>Error (first line)</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></section>")


PARALLEL_FROM_RECORDS = 60  # pages with fewer finished cells are drawn in this process


def _section(job: tuple[str, pd.DataFrame, list[Mapping[str, Any]], tuple[str, ...]]) -> str:
    return scenario_section(*job)


def _draw_sections(jobs: list[tuple[str, pd.DataFrame, list[Mapping[str, Any]], tuple[str, ...]]]) -> list[str]:
    """Draw these scenarios' sections, in order. Drawing the figures is most of a leaderboard rebuild (16 s of the
    default suite's on this 2-core machine, at the end of `make bench`, with nothing else running): where there
    are cores to spare, the sections are drawn in parallel processes (from a fork server, never a plain fork of
    this process, whose other threads may hold locks)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    small = sum(len(records) for _, _, records, _ in jobs) < PARALLEL_FROM_RECORDS  # start-up would cost more
    if small or len(jobs) < 2 or cores < 2 or "forkserver" not in multiprocessing.get_all_start_methods():
        return [_section(job) for job in jobs]
    with ProcessPoolExecutor(min(cores, len(jobs)), mp_context=multiprocessing.get_context("forkserver")) as pool:
        return list(pool.map(_section, jobs))


def _render_sections(jobs: list[tuple[str, pd.DataFrame, list[Mapping[str, Any]], tuple[str, ...]]],
                     cached: bool = False) -> list[str]:
    """Every scenario's section, in order. `cached`: sections drawn before from the same records, checks and code
    are read back from the disk cache (bench/report/section_cache.py) and only the others are drawn, then stored."""
    if not cached:
        return _draw_sections(jobs)
    from bench.report.section_cache import read_section, section_key, write_section

    keys = [section_key(scenario, records, checks) for scenario, _, records, checks in jobs]
    sections = [read_section(key) for key in keys]
    missing = [i for i, section in enumerate(sections) if section is None]
    for i, drawn in zip(missing, _draw_sections([jobs[i] for i in missing])):
        sections[i] = drawn
        write_section(keys[i], drawn)
    return sections


def render_page(records: Iterable[Mapping[str, Any]], references: Sequence[Reference] = (),
                checks: Mapping[str, Sequence[str]] | None = None, claims: str = "",
                related: Sequence[str] = (), cached_sections: bool = False) -> str:
    """The whole page as one string. `checks`: failing sanity checks by scenario; `claims`: the claims section's
    HTML (`bench.report.claims`); `related`: subfolders holding other suites' pages (e.g. `ofa_ablation`), linked
    from the navigation; `cached_sections`: read unchanged scenario sections from the disk cache
    (`_render_sections`)."""
    records = list(records)
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    agg = _frame(ok)
    jobs, nav = [], []
    for scenario in sorted(set(agg["scenario"].astype(str))) if not agg.empty else []:
        sub = agg[agg["scenario"] == scenario].reset_index(drop=True)
        members = [r for r in ok if scenario_name(r) == scenario]
        jobs.append((scenario, sub, members, tuple((checks or {}).get(scenario, ()))))
        nav.append(f'<a href="#scenario-{_esc(slug(scenario))}">{_esc(scenario)}</a>')
    sections = _render_sections(jobs, cached_sections)
    if claims:
        nav.insert(0, '<a href="#claims">claims of the papers</a>')
    if checks is not None:
        failing = sum(len(lines) for lines in checks.values())
        nav.insert(0, f'<a href="sanity.md">sanity checks ({failing} failing)</a>')
    average = b2n_average_section(agg)
    if average:
        nav.append(f'<a href="#{B2N_AVERAGE_SLUG}">base-to-new average</a>')
    if references:
        nav.append('<a href="#references">published references</a>')
    nav += [f'<a href="{_esc(name)}/index.html">suite {_esc(name)} (its own page)</a>' for name in related]
    submitted = sum(1 for r in ok if r.get("submitted"))
    summary = (f"{len(ok)} finished cells ({submitted} submitted), {len(failed)} failed. Rows average seeds; "
               "every number is computed from the stored accuracy matrices. Rows marked †submitted were run "
               "elsewhere and submitted as results files; comparability flags say which protocols differ.")
    body = claims + ("".join(sections) + average or "<p>No finished cells yet.</p>")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            "content='width=device-width,initial-scale=1'><title>PromptShift leaderboards</title>"
            f"<style>{_STYLE}</style></head><body><h1>PromptShift leaderboards</h1><p class=note>{_esc(summary)}</p>"
            f"<nav>{''.join(nav)}</nav>{body}{failures_section(failed)}{references_section(references)}"
            f"<script>{_SCRIPT}</script></body></html>\n")


def write_html(records: Iterable[Mapping[str, Any]], out_path: Path | str,
               references: Sequence[Reference] | None = None, checks: Mapping[str, Sequence[str]] | None = None,
               claims: str = "", related: Sequence[str] | None = None, cached_sections: bool = True) -> Path:
    """Write the page; references default to `bench/report/references.yaml` (none when it does not exist);
    `related`: subfolders with other suites' pages to link (default: those next to `out_path`); scenario sections
    drawn before from the same records and code are read back from the disk cache unless `cached_sections` is
    False (bench/report/section_cache.py)."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    refs = load_references() if references is None else references
    if related is None:  # other suites' pages in subfolders next to this one
        related = sorted(p.parent.name for p in out.parent.glob("*/index.html")) if out.parent.is_dir() else []
    out.write_text(render_page(records, refs, checks, claims, related, cached_sections), encoding="utf-8")
    return out
