"""The robustness leaderboard: one table per scenario from the `robustness` entry of cell records.

Numbers are copied or averaged over seeds from the records, never recomputed; a missing one shows as "—".
"""
from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.eval.budgets import parse_budget  # not bench.eval.robustness: that loads torch
from bench.report.intake import csv_cell
from bench.report.tables import MISSING, flags_label

REFERENCE = "full_finetune"  # the drop of every row is compared with full fine-tuning's
MARKDOWN, CSV = "robustness.md", "robustness.csv"


def _mean(values: list[float | None]) -> float | None:
    real = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return sum(real) / len(real) if real else None


def _std(values: list[float | None]) -> float | None:
    """Sample standard deviation (ddof=1) over seeds; None with fewer than two numbers."""
    real = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if len(real) < 2:
        return None
    mean = sum(real) / len(real)
    return math.sqrt(sum((v - mean) ** 2 for v in real) / (len(real) - 1))


def _pct_spread(value: float | None, std: float | None) -> str:
    return _pct(value) + (f" ± {100 * std:.1f}" if value is not None and std is not None else "")


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return MISSING
    text = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return text.replace("-0.0", "0.0").replace("+0.0", "0.0")


def _flatten(rob: Mapping[str, Any]) -> dict[str, float | None]:
    """The numbers of one record's robustness entry, as `column -> fraction`."""
    row: dict[str, float | None] = {"clean": rob.get("clean")}
    for attack in ("fgsm", "pgd"):
        for budget, acc in (rob.get(attack) or {}).items():
            row[f"{attack} {budget}"] = acc
    if isinstance(rob.get("autoattack"), Mapping):
        row[f"autoattack {rob['autoattack'].get('eps')}"] = rob["autoattack"].get("acc")
    if isinstance(rob.get("corruptions"), Mapping):
        row["corruption mean"] = rob["corruptions"].get("mean")
    return row


def _groups(records: Iterable[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    """Finished records with robustness numbers, grouped by (scenario, strategy label, backbone, settings,
    submitted): a submitted record never averages into (or stands in for) the suite's own row."""
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        rob = record.get("robustness")
        if record.get("status") != "ok" or not isinstance(rob, Mapping):
            continue
        config, strategy = record.get("config") or {}, record.get("strategy") or {}
        key = (str((record.get("scenario") or {}).get("name") or config.get("scenario")),
               str(strategy.get("label") or strategy.get("name") or config.get("strategy")),
               str(config.get("backbone")), json.dumps(rob.get("settings") or {}, sort_keys=True),
               record.get("submitted") is True)
        groups[key].append(record)
    return groups


def _summary(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    rows = [_flatten(r["robustness"]) for r in records]
    columns = list(dict.fromkeys(c for row in rows for c in row))
    first = records[0]
    return {"values": {c: _mean([row.get(c) for row in rows]) for c in columns}, "seeds": len(records),
            "stds": {c: _std([row.get(c) for row in rows]) for c in columns},
            "strategy_name": (first.get("strategy") or {}).get("name") or (first.get("config") or {}).get("strategy"),
            "family": (first.get("strategy") or {}).get("backbone_family") or "",
            "flags": flags_label((first.get("strategy") or {}).get("flags")),
            "settings": first["robustness"].get("settings") or {},
            "subset_size": first["robustness"].get("subset_size")}


def _worst_budget(values: Mapping[str, float | None], attack: str) -> str | None:
    budgets = [c.split(" ", 1)[1] for c in values if c.startswith(f"{attack} ")]
    return max(budgets, key=parse_budget) if budgets else None


def _drops(values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Clean accuracy minus PGD accuracy at the largest budget, and minus mean corruption accuracy."""
    clean, budget = values.get("clean"), _worst_budget(values, "pgd")
    pgd = values.get(f"pgd {budget}") if budget else None
    corr = values.get("corruption mean")
    return {"pgd": clean - pgd if clean is not None and pgd is not None else None,
            "corruption": clean - corr if clean is not None and corr is not None else None}


def _pgd_kept(values: Mapping[str, float | None]) -> float | None:
    """Share of clean accuracy that PGD leaves, averaged over the budgets: scale-free, so rows with very different
    clean accuracy compare (a drop cannot exceed clean accuracy, so a model that has little has little to lose)."""
    clean = values.get("clean")
    if not clean:  # no clean accuracy: nothing to keep, no share to report
        return None
    kept = [acc / clean for c, acc in values.items() if c.startswith("pgd ") and acc is not None]
    return sum(kept) / len(kept) if kept else None


def _reference(summaries: list[dict[str, Any]], family: str) -> dict[str, Any] | None:
    """Full fine-tuning on the same backbone family (its own-name variant first)."""
    candidates = [s for s in summaries if s["strategy_name"] == REFERENCE and s["family"] == family
                  and not s["submitted"]]
    candidates.sort(key=lambda s: (s["label"] != REFERENCE, s["label"]))
    return candidates[0] if candidates else None


def _legend(summaries: list[dict[str, Any]]) -> list[str]:
    lines = []
    for text in sorted({json.dumps(s["settings"], sort_keys=True) for s in summaries}):
        cfg = json.loads(text)
        if not cfg:
            continue
        parts = [f"{cfg.get('subset_size')} images per evaluation set (fixed, seeded subset)"]
        if cfg.get("pgd"):
            step = cfg.get("pgd_step_size") or 2.5 / cfg.get("pgd_steps", 10)
            parts.append(f"PGD {cfg.get('pgd_steps')} steps of {step:.3g} x eps, "
                         f"random start {'on' if cfg.get('pgd_random_start') else 'off'}")
        if cfg.get("autoattack"):
            parts.append(f"AutoAttack {cfg.get('autoattack_version')} (pyautoattack) at {cfg.get('autoattack_eps')} "
                         f"on the first {cfg.get('autoattack_subset_size')} images of each subset")
        if cfg.get("corruptions"):
            parts.append(f"{len(cfg.get('corruption_names', []))} common corruptions x severities "
                         f"{cfg.get('severities')}, ImageNet-C constants (imagecorruptions; not CIFAR-10-C's)")
        lines.append("- Settings: " + "; ".join(parts) + ".")
    return lines + [
        "- Accuracy in %, among each evaluation set's label space, averaged over its evaluation sets (weighted by "
        "subset size) and over seeds: mean ± sample std (ddof=1) where a row has several seeds (n in Seeds); drops "
        "and shares are of the means. L-infinity budgets on pixels in [0, 1].",
        "- FGSM/PGD: an image counts as robust at a budget only if it is correct clean and under that attack at "
        "that budget and every smaller one.",
        "- PGD drop = clean - PGD at the largest budget; Corr. drop = clean - mean corruption accuracy. "
        f"\"vs full FT\" = this drop minus {REFERENCE}'s on the same scenario and backbone family (negative: "
        "loses less than full fine-tuning); — where full fine-tuning has no robustness result.",
        "- PGD kept = PGD accuracy / clean accuracy, averaged over the PGD budgets: the share of its clean accuracy a "
        "model keeps, comparable across rows whose clean accuracy differs (positive \"vs full FT\": keeps more).",
    ]


def _scenario_section(scenario: str, summaries: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    columns = list(dict.fromkeys(c for s in summaries for c in s["values"]))
    attack_cols = sorted((c for c in columns if c.split(" ")[0] in ("fgsm", "pgd", "autoattack")),
                         key=lambda c: (("fgsm", "pgd", "autoattack").index(c.split(" ")[0]),
                                        parse_budget(c.split(" ", 1)[1])))
    value_cols = ["clean", *attack_cols] + (["corruption mean"] if "corruption mean" in columns else [])
    titles = {"clean": "Clean", "corruption mean": "Corr. mean"}
    headers = ["Strategy", "Backbone", "Flags", "Seeds",
               *[titles.get(c, c.replace("fgsm", "FGSM").replace("pgd", "PGD").replace("autoattack", "AA"))
                 for c in value_cols], "PGD drop", "vs full FT", "Corr. drop", "vs full FT", "PGD kept", "vs full FT"]
    lines = [f"## {scenario}", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(headers) - 3)) + "|"]
    csv_rows = []
    for s in sorted(summaries, key=lambda s: (s["label"], s["backbone"])):
        drops = _drops(s["values"])
        ref = _reference(summaries, s["family"])
        ref_drops = _drops(ref["values"]) if ref else {"pgd": None, "corruption": None}
        drops["kept"], ref_drops["kept"] = _pgd_kept(s["values"]), _pgd_kept(ref["values"]) if ref else None
        versus = {k: drops[k] - ref_drops[k] if drops[k] is not None and ref_drops[k] is not None else None
                  for k in drops}
        cells = [s["label"], s["backbone"], s["flags"], str(s["seeds"]),
                 *[_pct_spread(s["values"].get(c), s["stds"].get(c)) for c in value_cols],
                 _pct(drops["pgd"]), _pct(versus["pgd"], True), _pct(drops["corruption"]),
                 _pct(versus["corruption"], True), _pct(drops["kept"]), _pct(versus["kept"], True)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        csv_rows.append({"scenario": scenario, "strategy": s["label"], "backbone": s["backbone"], "seeds": s["seeds"],
                         "subset_size": s["subset_size"], **{c: s["values"].get(c) for c in value_cols},
                         "pgd_drop": drops["pgd"], "pgd_drop_vs_full_ft": versus["pgd"],
                         "corruption_drop": drops["corruption"], "corruption_drop_vs_full_ft": versus["corruption"],
                         "pgd_kept": drops["kept"], "pgd_kept_vs_full_ft": versus["kept"],
                         "constants": "ImageNet-C"})
    return lines + ["", *_legend(summaries), ""], csv_rows


def write_robustness_tables(records: Iterable[Mapping[str, Any]], out_dir: Path | str) -> list[Path]:
    """Write `robustness.md` (a table per scenario) and `robustness.csv` (fractions); remove stale ones when no
    record has robustness numbers. Returns the written paths."""
    out = Path(out_dir)
    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (scenario, label, backbone, _, submitted), group in _groups(records).items():
        shown = f"{label} †submitted" if submitted else label  # the same mark as every other table
        by_scenario[scenario].append({**_summary(group), "label": shown, "backbone": backbone,
                                      "submitted": submitted})
    paths = [out / MARKDOWN, out / CSV]
    if not by_scenario:
        for path in paths:
            path.unlink(missing_ok=True)
        return []
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Robustness", "", "Adversarial (FGSM, PGD, AutoAttack) and common-corruption accuracy of every "
             "finished cell's final model. Corruption accuracy uses ImageNet-C constants.", ""]
    rows: list[dict[str, Any]] = []
    for scenario in sorted(by_scenario):
        section, csv_rows = _scenario_section(scenario, by_scenario[scenario])
        lines += section
        rows += csv_rows
    paths[0].write_text("\n".join(lines), encoding="utf-8")
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with paths[1].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)  # no spreadsheet formulas
    return paths
