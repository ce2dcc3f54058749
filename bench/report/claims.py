"""The claims page: each claim of the seed papers, checked on this suite's results (`leaderboards/claims.md` and a
section of the HTML page).

A claim is data (CLAIMS below): what the paper says, which metric, which rows it compares, on which scenario kinds.
For every scenario and backbone where both sides ran, the verdict comes from the t-based 95% intervals over seeds
(`bench.report.stats.compare`): **holds** when the claimed winner's interval lies wholly on the better side,
**fails** when it lies wholly on the worse side, **undecided** when the intervals overlap (within noise); **not run**
when a side has no finished cells. With one seed there is no interval and the means decide: the page says n = 1.
A claim over several pairs (the OFA-PT factors) is summarised as holds (some pairs hold, none fails), fails (some
fail, none holds), mixed (both) or undecided (every pair within noise).
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.report.sanity import Row, table_rows
from bench.report.stats import compare

__all__ = ["Claim", "Verdict", "CLAIMS", "evaluate_claims", "claims_markdown", "claims_html", "write_claims",
           "metric_values"]

INCREMENTAL = ("class_incremental", "domain_incremental")
PROMPT_STRATEGIES = ("vpt_shallow", "vpt_deep", "l2p", "ofa_prompt", "dualprompt", "coda_prompt")


@dataclass(frozen=True)
class Claim:
    """One claim: rows named `better` should beat rows named `worse` on `metric` (lower wins if not higher_is_better).

    `better`/`worse` are strategy names or labels; several names on one side mean "each of these" (every pair is
    compared). `factor`: instead of names, compare ofa_prompt variants that differ only in this config field, its
    largest value against its smallest (`factor_better` = the value the paper recommends, for booleans).
    """

    key: str
    text: str
    paper: str
    kinds: tuple[str, ...]
    metric: str
    better: tuple[str, ...] = ()
    worse: tuple[str, ...] = ()
    higher_is_better: bool = True
    factor: str = ""
    factor_strategy: str = "ofa_prompt"


CLAIMS: tuple[Claim, ...] = (
    Claim("cocoop_new", "CoCoOp beats CoOp on new classes", "Zhou et al., CoCoOp, CVPR 2022",
          ("base_to_new",), "new_acc", ("cocoop",), ("coop",)),
    Claim("l2p_forgets_less", "L2P forgets less than naive fine-tuning", "Wang et al., L2P, CVPR 2022",
          INCREMENTAL, "forgetting_avalanche", ("l2p",), ("naive",), higher_is_better=False),
    Claim("dapl_target", "DAPL beats zero-shot CLIP on the target domain", "Ge et al., DAPL, TNNLS 2023",
          ("domain_adaptation",), "target_acc", ("dapl",), ("zeroshot_clip",)),
    Claim("vpt_deep", "VPT-deep beats VPT-shallow", "Jia et al., VPT, ECCV 2022",
          INCREMENTAL, "final_accuracy", ("vpt_deep",), ("vpt_shallow",)),
    Claim("prompt_pgd", "Prompt-tuned models keep more of their accuracy under PGD than full fine-tuning",
          "robustness claim of the prompt-tuning literature (e.g. VPT, ECCV 2022)", INCREMENTAL,
          "pgd_kept", PROMPT_STRATEGIES, ("full_finetune",)),
    Claim("ofa_longer", "Longer prompts are better (OFA-PT)", "Yang et al., OFA-PT, ACL Findings 2023",
          INCREMENTAL + ("base_to_new",), "headline", factor="length"),
    Claim("ofa_deeper", "Deeper prompts are better (OFA-PT)", "Yang et al., OFA-PT, ACL Findings 2023",
          INCREMENTAL + ("base_to_new",), "headline", factor="depth"),
    Claim("ofa_reparam", "Reparameterised prompts are better (OFA-PT)", "Yang et al., OFA-PT, ACL Findings 2023",
          INCREMENTAL + ("base_to_new",), "headline", factor="reparam"),
    Claim("prompts_vs_simplecil", "Prompt methods beat SimpleCIL on the same frozen features",
          "Zhou et al., SimpleCIL/APER, IJCV 2024", ("class_incremental",), "final_accuracy",
          ("l2p", "dualprompt", "coda_prompt"), ("simplecil",)),
    Claim("prompts_vs_ranpac", "Prompt methods beat RanPAC on the same frozen features",
          "McDonnell et al., RanPAC, NeurIPS 2023", ("class_incremental",), "final_accuracy",
          ("l2p", "dualprompt", "coda_prompt"), ("ranpac",)),
)


@dataclass
class Comparison:
    """One pair of rows on one scenario and backbone."""

    scenario: str
    backbone: str
    better: str
    worse: str
    better_stats: tuple[float, float, int]
    worse_stats: tuple[float, float, int]
    verdict: str  # holds | fails | undecided


@dataclass
class Verdict:
    claim: Claim
    verdict: str  # holds | fails | undecided | mixed | not run
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""


# ----------------------------------------------------------------------------------------------- values
def _pgd_kept(record: Mapping[str, Any]) -> float:
    """PGD accuracy / clean accuracy, averaged over the PGD budgets (as in the robustness table)."""
    rob = record.get("robustness")
    if not isinstance(rob, Mapping) or not rob.get("clean") or not rob.get("pgd"):
        return math.nan
    kept = [acc / rob["clean"] for acc in rob["pgd"].values() if isinstance(acc, (int, float))]
    return float(np.mean(kept)) if kept else math.nan


def metric_values(row: Row, metric: str) -> list[float]:
    """Per-seed values of `metric` for a row ("headline": HM, target or final accuracy; "pgd_kept": robustness)."""
    out = []
    for record in row.records:
        metrics = record.get("metrics") or {}
        if metric == "pgd_kept":
            value = _pgd_kept(record)
        elif metric == "headline":
            value = next((metrics[k] for k in ("harmonic_mean", "target_acc", "final_accuracy") if k in metrics),
                         math.nan)
        else:
            value = metrics.get(metric, math.nan)
        out.append(float(value) if isinstance(value, (int, float)) and value is not None else math.nan)
    return out


def _stats(values: Sequence[float]) -> tuple[float, float, int]:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else 0.0), int(arr.size)


def _compare(claim: Claim, a: Row, b: Row) -> Comparison | None:
    sa, sb = _stats(metric_values(a, claim.metric)), _stats(metric_values(b, claim.metric))
    if sa[2] == 0 or sb[2] == 0:
        return None
    order = compare(sa[0], sa[1], sa[2], sb[0], sb[1], sb[2])
    win, lose = ("greater", "less") if claim.higher_is_better else ("less", "greater")
    verdict = "holds" if order == win else "fails" if order == lose else "undecided"
    return Comparison(a.scenario, a.backbone, a.label, b.label, sa, sb, verdict)


def _kind(row: Row) -> str:
    return str((row.first.get("scenario") or {}).get("kind") or "")


def _matches(row: Row, names: Sequence[str]) -> bool:
    return not row.submitted and (row.label in names or (row.strategy in names and row.label == row.strategy))


def _named_pairs(claim: Claim, rows: Sequence[Row]) -> list[tuple[Row, Row]]:
    pairs = []
    for a in (r for r in rows if _matches(r, claim.better) and _kind(r) in claim.kinds):
        for b in (r for r in rows if _matches(r, claim.worse)):
            if b.scenario == a.scenario and b.backbone == a.backbone:
                pairs.append((a, b))
    return pairs


def _factor_pairs(claim: Claim, rows: Sequence[Row]) -> list[tuple[Row, Row]]:
    """Variants equal in every config field but `factor`: the largest (True for a flag) against the smallest."""
    groups: dict[tuple, list[tuple[Any, Row]]] = {}
    for row in rows:
        if row.strategy != claim.factor_strategy or row.submitted or _kind(row) not in claim.kinds:
            continue
        config = dict((row.first.get("config") or {}).get("strategy_config") or {})
        if claim.factor not in config:
            continue
        value = config.pop(claim.factor)
        others = tuple(sorted((k, repr(v)) for k, v in config.items()))
        groups.setdefault((row.scenario, row.backbone, others), []).append((value, row))
    pairs = []
    for members in groups.values():
        if len({repr(v) for v, _ in members}) < 2:
            continue
        members.sort(key=lambda m: m[0])
        pairs.append((members[-1][1], members[0][1]))
    return pairs


def _summary(verdicts: Sequence[str]) -> str:
    holds, fails = "holds" in verdicts, "fails" in verdicts
    if holds and fails:
        return "mixed"
    return "holds" if holds else "fails" if fails else "undecided"


def evaluate_claims(records: Iterable[Mapping[str, Any]], claims: Sequence[Claim] = CLAIMS) -> list[Verdict]:
    """One verdict per claim, with every comparison behind it."""
    rows = table_rows(records)
    out = []
    for claim in claims:
        pairs = _factor_pairs(claim, rows) if claim.factor else _named_pairs(claim, rows)
        comparisons = [c for a, b in pairs if (c := _compare(claim, a, b)) is not None]
        if not comparisons:
            sides = f"{claim.factor_strategy} variants differing in {claim.factor!r}" if claim.factor else \
                f"{' / '.join(claim.better)} and {' / '.join(claim.worse)} on one scenario and backbone"
            out.append(Verdict(claim, "not run", [], f"no finished cells of {sides} ({', '.join(claim.kinds)})"))
            continue
        single = any(min(c.better_stats[2], c.worse_stats[2]) < 2 for c in comparisons)
        note = "some rows have one seed (n = 1): no interval, their means decide" if single else ""
        out.append(Verdict(claim, _summary([c.verdict for c in comparisons]), comparisons, note))
    return out


# ------------------------------------------------------------------------------------------------ output
def _num(stats: tuple[float, float, int], metric: str) -> str:
    mean, std, n = stats
    return (f"{mean * 100:.1f} ± {std * 100:.1f}" if n > 1 else f"{mean * 100:.1f}") + f" (n={n})"


def _metric_name(claim: Claim) -> str:
    names = {"headline": "headline (HM / target / final accuracy)", "pgd_kept": "PGD kept (PGD / clean accuracy)",
             "forgetting_avalanche": "forgetting (avalanche), lower is better"}
    return names.get(claim.metric, claim.metric.replace("_", " "))


RULE = ("Rule: 95% interval = mean ± t(0.975, n−1)·std/√n over seeds. holds = the claimed winner's interval lies "
        "wholly on the better side of the other's; fails = wholly on the worse side; undecided = the intervals "
        "overlap (within noise); not run = a side has no finished cells. Several pairs: holds if some hold and none "
        "fails, fails if some fail and none holds, mixed if both, undecided if all are within noise. With n = 1 "
        "there is no interval and the means decide.")


def claims_markdown(verdicts: Sequence[Verdict]) -> str:
    lines = ["# Claims of the seed papers, checked on these results", "",
             "Generated by `bench/report/claims.py` from the stored results (not written by hand). Numbers in %, "
             "mean ± std over seeds.", "", RULE, "", "| Claim | Paper | Metric | Verdict | Pairs (holds / fails / "
             "undecided) |", "|---|---|---|---|---|"]
    for v in verdicts:
        counts = " / ".join(str(sum(c.verdict == k for c in v.comparisons)) for k in ("holds", "fails", "undecided"))
        lines.append(f"| {v.claim.text} | {v.claim.paper} | {_metric_name(v.claim)} | **{v.verdict}** | "
                     f"{counts if v.comparisons else '—'} |")
    lines.append("")
    for v in verdicts:
        lines += [f"## {v.claim.text}: {v.verdict}", "", f"{v.claim.paper}. Metric: {_metric_name(v.claim)}."]
        if v.note:
            lines.append(f"Note: {v.note}.")
        lines.append("")
        if v.comparisons:
            lines += ["| Scenario | Backbone | Claimed better | Value | Claimed worse | Value | Verdict |",
                      "|---|---|---|---:|---|---:|---|"]
            lines += [f"| {c.scenario} | {c.backbone} | {c.better} | {_num(c.better_stats, v.claim.metric)} | "
                      f"{c.worse} | {_num(c.worse_stats, v.claim.metric)} | {c.verdict} |" for c in v.comparisons]
            lines.append("")
    return "\n".join(lines)


def claims_html(verdicts: Sequence[Verdict]) -> str:
    """The claims section of the HTML page (empty when there are no verdicts)."""
    if not verdicts:
        return ""
    esc = html.escape
    rows = []
    for v in verdicts:
        detail = "; ".join(f"{c.scenario}/{c.backbone}: {c.better} {_num(c.better_stats, v.claim.metric)} vs "
                           f"{c.worse} {_num(c.worse_stats, v.claim.metric)} → {c.verdict}" for c in v.comparisons)
        rows.append(f"<tr><td>{esc(v.claim.text)}</td><td>{esc(v.claim.paper)}</td><td>{esc(_metric_name(v.claim))}"
                    f"</td><td class=\"verdict-{esc(v.verdict.replace(' ', '-'))}\">{esc(v.verdict)}</td>"
                    f"<td>{esc(detail or v.note)}</td></tr>")
    return ('<section id="claims"><h2>Claims of the seed papers, checked on these results</h2>'
            f'<p class="note">{esc(RULE)} Full tables: <a href="claims.md">claims.md</a>.</p><div class="scroll">'
            "<table><thead><tr><th>Claim</th><th>Paper</th><th>Metric</th><th>Verdict</th><th>Numbers (%)</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def write_claims(verdicts: Sequence[Verdict], out_dir: Path | str) -> Path:
    path = Path(out_dir) / "claims.md"
    path.write_text(claims_markdown(verdicts), encoding="utf-8")
    return path
