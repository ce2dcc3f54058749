"""The claims page: each claim of the seed papers and the suite's method papers, in its paper's direction, decided
on these results (`leaderboards/claims.md` and a section of the HTML page). Nothing on the page is hand-written:
the claims are data (`claims.yaml`), the numbers come from the records.

A claim compares rows named `better` with rows named `worse` on one metric, paired over the seeds both ran, on
every scenario and backbone of the results where the claim applies (its scenario kinds, optionally named
scenarios). Each pair is one `Comparison` (`bench.report.stats.paired`); the verdicts use the paired t-test,
Holm-corrected across every comparison on the page (`PAIRED_RULE`). A "matches or beats" claim is a non-inferiority
claim: its comparisons test the mean difference against −`MATCH_MARGIN` instead of 0, in the same Holm family, so
that a match is declared at the page's error rate, not at an uncorrected interval's.

A claim's verdict: holds (some comparisons hold, none fails; "holds (k of n comparisons; the rest undecided)" unless
every one holds), fails (likewise), depends on the
scenario (holds on one scenario, fails on another) or on the method (both within one scenario, against different
rows), undecided (smallest detectable difference X pt) when no comparison is decided. Claims whose rows these
results lack are listed once, with what is missing ("cannot decide here"), or linked to the suite that decides
them (`decided_by`).
"""
from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.report.sanity import Row, table_rows
from bench.run.seq2seq_metrics import PRIMARY
from bench.report.stats import PAIRED_RULE, Paired, paired, with_holm

__all__ = ["Claim", "Comparison", "Verdict", "CLAIMS", "load_claims", "evaluate_claims", "claims_markdown",
           "claims_html", "write_claims", "provenance", "seed_cost", "suite_pages", "metric_values", "MATCH_MARGIN"]

REGISTRY = Path(__file__).with_name("claims.yaml")
MATCH_MARGIN = 0.01  # "matches": the paired difference is significantly above -1 pt (Holm-corrected)
LOWER_IS_BETTER = frozenset({"forgetting_avalanche", "forgetting"})
OFFICIAL = "official"  # a multimodal claim decided on each task kind's own metric (`_comparisons`)
RELATIONS = ("beats", "matches_or_beats")
FACTOR_ENDS = ("largest", "smallest")


@dataclass(frozen=True)
class Claim:
    """One claim of the registry (see claims.yaml for the fields)."""

    key: str
    claim: str
    paper: str
    metric: str
    kinds: tuple[str, ...]
    relation: str = "beats"
    better: tuple[str, ...] = ()
    worse: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    factor: str = ""
    factor_strategy: str = "ofa_prompt"
    factor_favours: str = "largest"  # which end of `factor` the claim says is better: largest | smallest
    setting: str = ""
    decided_by: str = ""

    @property
    def text(self) -> str:
        return self.claim

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def applies_to(self, row: Row) -> bool:
        kind = str((row.first.get("scenario") or {}).get("kind") or "")
        return kind in self.kinds and (not self.scenarios or row.scenario in self.scenarios)


def load_claims(path: Path | str = REGISTRY) -> tuple[Claim, ...]:
    """The registry as Claims; a malformed entry is a one-line error naming it."""
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    fields = {f.name for f in dataclasses.fields(Claim)}
    out = []
    for i, entry in enumerate(entries):
        name = entry.get("key", f"entry {i}") if isinstance(entry, dict) else f"entry {i}"
        if not isinstance(entry, dict) or set(entry) - fields or not {"key", "claim", "paper", "metric",
                                                                       "kinds"} <= set(entry):
            raise ValueError(f"{path}: claim {name!r} is malformed (fields: {sorted(fields)})")
        if entry.get("relation", "beats") not in RELATIONS:
            raise ValueError(f"{path}: claim {name!r}: relation must be one of {RELATIONS}")
        if not entry.get("factor") and not (entry.get("better") and entry.get("worse")):
            raise ValueError(f"{path}: claim {name!r} names neither `better`/`worse` nor a `factor`")
        if entry.get("factor_favours", "largest") not in FACTOR_ENDS:
            raise ValueError(f"{path}: claim {name!r}: factor_favours must be one of {FACTOR_ENDS}")
        out.append(Claim(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}))
    return tuple(out)


@lru_cache(maxsize=1)
def _registry() -> tuple[Claim, ...]:
    return load_claims()


CLAIMS: tuple[Claim, ...] = _registry()


@dataclass
class Comparison:
    """One pair of rows on one scenario and backbone, paired over their shared seeds."""

    scenario: str
    backbone: str
    better: str
    worse: str
    better_stats: tuple[float, float, int]
    worse_stats: tuple[float, float, int]
    paired: Paired  # differences oriented so that > 0 favours `better` (negated for lower-is-better metrics)
    relation: str = "beats"
    verdict: str = "undecided"  # holds | fails | undecided, set after the page-wide correction

    def decide(self) -> str:
        """The Holm-corrected test's verdict (for "matches or beats", the test against -MATCH_MARGIN: `_compare`)."""
        return self.paired.verdict()


@dataclass
class Verdict:
    claim: Claim
    verdict: str  # holds | fails | depends on the scenario | depends on the method | undecided (...) | cannot decide
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""

    @property
    def decided(self) -> bool:
        return bool(self.comparisons)


# ----------------------------------------------------------------------------------------------- values
def _pgd_kept(record: Mapping[str, Any]) -> float:
    """PGD accuracy / clean accuracy, averaged over the PGD budgets (as in the robustness table)."""
    rob = record.get("robustness")
    if not isinstance(rob, Mapping) or not rob.get("clean") or not rob.get("pgd"):
        return math.nan
    kept = [acc / rob["clean"] for acc in rob["pgd"].values() if isinstance(acc, (int, float))]
    return float(np.mean(kept)) if kept else math.nan


def _value(record: Mapping[str, Any], metric: str) -> float:
    metrics = record.get("metrics") or {}
    if metric == "pgd_kept":
        value = _pgd_kept(record)
    elif metric == "headline":
        value = next((metrics[k] for k in ("harmonic_mean", "target_acc", "final_accuracy") if k in metrics),
                     math.nan)
    else:
        value = metrics.get(metric, math.nan)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def metric_values(row: Row, metric: str) -> dict[int, float]:
    """Per-seed values of `metric` for a row, by the cell's seed."""
    return {int((record.get("config") or {}).get("seed", i)): _value(record, metric)
            for i, record in enumerate(row.records)}


def _stats(values: Iterable[float]) -> tuple[float, float, int]:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else 0.0), int(arr.size)


def _comparisons(claim: Claim, a: Row, b: Row) -> list[Comparison]:
    """The pair's comparison; for a claim on the official metrics of the multimodal task kinds (`OFFICIAL`), one
    per task kind of the stream, each on its kind's own metric (CIDEr-D, VQA accuracy, ...) right after training
    on that kind's task: the transfer the paper measures, before later tasks of the stream overwrite it."""
    if claim.metric != OFFICIAL:
        return [c for c in [_compare(claim, a, b)] if c is not None]
    out = []
    for kind in dict.fromkeys((a.first.get("results") or {}).get("task_kinds") or []):
        metric = PRIMARY.get(kind, kind)
        found = _compare(dataclasses.replace(claim, metric=f"learned_{metric}"), a, b,
                         f"{a.scenario} [{kind}: {metric}]")
        if found is not None:
            out.append(found)
    return out


def _compare(claim: Claim, a: Row, b: Row, scenario: str | None = None) -> Comparison | None:
    va, vb = metric_values(a, claim.metric), metric_values(b, claim.metric)
    null = -MATCH_MARGIN if claim.relation == "matches_or_beats" else 0.0
    if claim.higher_is_better:
        p = paired(va, vb, null=null)
    else:  # lower is better: the difference favouring `better` is b - a
        p = paired(vb, va, null=null)
    if p.n == 0:
        return None
    return Comparison(scenario or a.scenario, a.backbone, a.label, b.label, _stats(va.values()), _stats(vb.values()),
                      p, claim.relation)


def _matches(row: Row, names: Sequence[str]) -> bool:
    """A row stands for a claim's side by the strategy it ran, never by its free label: a linear probe labelled
    "l2p" is not L2P; a labelled variant of a named strategy (an ablation's) is not its default either."""
    return not row.submitted and row.strategy in names and row.label == row.strategy


def _named_pairs(claim: Claim, rows: Sequence[Row]) -> list[tuple[Row, Row]]:
    pairs = []
    for a in (r for r in rows if _matches(r, claim.better) and claim.applies_to(r)):
        for b in (r for r in rows if _matches(r, claim.worse)):
            if b.scenario == a.scenario and b.backbone == a.backbone:
                pairs.append((a, b))
    return pairs


def _factor_pairs(claim: Claim, rows: Sequence[Row]) -> list[tuple[Row, Row]]:
    """Variants equal in every config field but `factor`: the end the claim favours (`factor_favours`: the largest
    value, True for a flag, unless it says smallest) against the other end."""
    groups: dict[tuple, list[tuple[Any, Row]]] = {}
    for row in rows:
        if row.strategy != claim.factor_strategy or row.submitted or not claim.applies_to(row):
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
        smallest, largest = members[0][1], members[-1][1]
        pairs.append((largest, smallest) if claim.factor_favours == "largest" else (smallest, largest))
    return pairs


def _pt(x: float) -> str:
    return f"{x * 100:.1f}"


def summarise(comparisons: Sequence[Comparison]) -> str:
    """A claim's verdict from its decided comparisons (see the module docstring)."""
    holds = {c.scenario for c in comparisons if c.verdict == "holds"}
    fails = {c.scenario for c in comparisons if c.verdict == "fails"}
    if holds and fails:
        return "depends on the scenario" if holds != fails or len(holds | fails) > 1 else "depends on the method"
    if holds or fails:  # one direction only; say how much of the claim the data decided
        outcome = "holds" if holds else "fails"
        decided = sum(c.verdict == outcome for c in comparisons)
        rest = len(comparisons) - decided
        return outcome if not rest else f"{outcome} ({decided} of {len(comparisons)} comparisons; {rest} undecided)"
    mdes = [c.paired.mde for c in comparisons if not math.isnan(c.paired.mde)]
    if not mdes:  # one seed, or identical differences in every seed (the exact test, 2/2^n, stood in)
        single = all(c.paired.n < 2 for c in comparisons)
        return "undecided (one seed: no test)" if single else "undecided (no spread over seeds: exact test only)"
    low, high = min(mdes), max(mdes)
    size = f"{_pt(low)} pt" if _pt(low) == _pt(high) else f"{_pt(low)}–{_pt(high)} pt"
    return f"undecided (smallest detectable difference {size})"


def _missing(claim: Claim, rows: Sequence[Row]) -> str:
    """Why these results cannot decide a claim, in a few words."""
    if claim.factor:
        return f"needs {claim.factor_strategy} variants differing only in {claim.factor!r}"
    present = {r.strategy for r in rows}
    where = f"{' / '.join(claim.scenarios)}" if claim.scenarios else f"a {' or '.join(claim.kinds)} scenario"
    missing = [side for side in (claim.better, claim.worse) if not set(side) & present]
    if missing:
        return " and ".join(f"{' / '.join(side)} did not run" for side in missing)
    return f"needs both sides on {where} with one backbone"


def evaluate_claims(records: Iterable[Mapping[str, Any]], claims: Sequence[Claim] | None = None) -> list[Verdict]:
    """One verdict per claim, with every comparison behind it; the Holm correction runs over every comparison of
    every claim together (the page is one family of tests)."""
    claims = CLAIMS if claims is None else claims
    rows = table_rows(records)
    found: list[tuple[Claim, list[Comparison]]] = []
    for claim in claims:
        pairs = _factor_pairs(claim, rows) if claim.factor else _named_pairs(claim, rows)
        found.append((claim, [c for a, b in pairs for c in _comparisons(claim, a, b)]))
    flat = [c for _, comps in found for c in comps]
    for comparison, corrected in zip(flat, with_holm([c.paired for c in flat])):
        comparison.paired = corrected
        comparison.verdict = comparison.decide()
    out = []
    for claim, comparisons in found:
        if not comparisons:
            where = f"decided by the {claim.decided_by} suite" if claim.decided_by else "cannot decide here"
            out.append(Verdict(claim, where, [], _missing(claim, rows)))
            continue
        single = any(c.paired.n < 2 for c in comparisons)
        note = "some pairs share one seed only: no test, undecided" if single else ""
        out.append(Verdict(claim, summarise(comparisons), comparisons, note))
    return out


# ------------------------------------------------------------------------------------------------ output
def _metric_name(claim: Claim) -> str:
    names = {"headline": "headline (HM / target / final accuracy)", "pgd_kept": "PGD kept (PGD / clean accuracy)",
             OFFICIAL: "each task kind's official metric right after training on its task (CIDEr-D, VQA accuracy, "
                       "entailment accuracy, accuracy at IoU >= 0.5)",
             "pgd_kept_official": "official metric kept under PGD (PGD / clean, per task)",
             "forgetting_avalanche": "forgetting (avalanche), lower is better", "harmonic_mean": "harmonic mean"}
    return names.get(claim.metric, claim.metric.replace("_", " "))


def _num(stats: tuple[float, float, int]) -> str:
    mean, std, n = stats
    return (f"{_pt(mean)} ± {_pt(std)}" if n > 1 else f"{_pt(mean)}") + f" (n={n})"


def _p(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def _diff(c: Comparison) -> str:
    p = c.paired
    if p.n < 2:
        return f"{p.mean_diff * 100:+.1f}"
    return f"{p.mean_diff * 100:+.1f} [{p.ci[0] * 100:+.1f}, {p.ci[1] * 100:+.1f}]"


def _relation(claim: Claim) -> str:
    return "matches or beats" if claim.relation == "matches_or_beats" else "beats"


def _scenario_summary(v: Verdict) -> str:
    by: dict[str, list[str]] = {}
    for c in v.comparisons:
        by.setdefault(f"{c.scenario}", []).append(c.verdict)
    parts = []
    for scenario, verdicts in by.items():
        counts = ", ".join(f"{verdicts.count(k)} {k}" for k in ("holds", "fails", "undecided") if verdicts.count(k))
        parts.append(f"{scenario}: {counts}")
    return "; ".join(parts)


def suite_pages(out_dir: Path | str, suites: Iterable[str]) -> dict[str, str]:
    """Where each named suite's pages are, relative to the leaderboards folder `out_dir`, as a folder prefix. The
    default suite's `leaderboards/` holds the other suites' pages as subfolders (`ofa_ablation/`), so from another
    suite's folder (`leaderboards/robustness/`) the same page is a sibling (`../ofa_ablation/`). Asked of the real
    folder, not of the scratch folder a page is rendered in; where neither exists, a subfolder, unless `out_dir`
    itself sits in a leaderboards folder (its parent has an index.html)."""
    out_dir = Path(out_dir)
    where = {}
    for name in suites:
        sibling = (out_dir.parent / name).is_dir() or (out_dir.parent / "index.html").is_file()
        where[name] = f"../{name}/" if not (out_dir / name).is_dir() and sibling else f"{name}/"
    return where


def _page(v: Verdict, pages: Mapping[str, str] | None, file: str) -> str:
    """The relative link to `file` of the suite that decides a claim (`pages`: `suite_pages`; default: a subfolder)."""
    name = v.claim.decided_by
    return f"{(pages or {}).get(name, f'{name}/')}{file}"


def _link(v: Verdict, pages: Mapping[str, str] | None = None) -> str:
    if not v.claim.decided_by:
        return ""
    return f"[{v.claim.decided_by}/claims.md]({_page(v, pages, 'claims.md')})"


HEADER = ("Generated by `bench/report/claims.py` from the claims registry (`bench/report/claims.yaml`) and the stored "
          "results: nothing here is written by hand. Each claim is stated in its paper's direction. Numbers in %; "
          "values are mean ± sd over seeds; d = claimed better − claimed worse per seed (for forgetting, worse − "
          "better), its mean with the 95% t-interval in brackets.")


def provenance(records: Iterable[Mapping[str, Any]]) -> str:
    """Which results a page was generated from: the record count and the code versions that computed them."""
    records = [r for r in records if r.get("status") == "ok"]
    versions = sorted({str((r.get("env") or {}).get("code_version") or "unknown") for r in records})
    return f"Generated from {len(records)} finished result records computed by code version(s) {', '.join(versions)}."


def seed_cost(records: Iterable[Mapping[str, Any]], verdicts: Sequence[Verdict], seeds: int = 5,
              workers: int = 2) -> str:
    """What running every row behind a comparison on the page at `seeds` seeds would add, from the records' own
    timings (each row's mean seconds a cell times its missing seeds); wall time is cell time / `workers`, the rate at
    which the default run's cells packed onto two workers. Empty when no comparison was made."""
    records = [r for r in records if r.get("status") == "ok"]
    wanted = {(c.scenario, c.backbone, side) for v in verdicts for c in v.comparisons for side in (c.better, c.worse)}
    rows = [r for r in table_rows(records) if (r.scenario, r.backbone, r.label) in wanted]
    if not rows:
        return ""
    secs = lambda rec: float((rec.get("timing") or {}).get("total_seconds") or 0.0)  # noqa: E731
    now = sum(secs(rec) for row in rows for rec in row.records)
    missing = {id(row): max(0, seeds - len(row.records)) for row in rows}
    add = sum(np.mean([secs(rec) for rec in row.records]) * missing[id(row)] for row in rows)
    counts = sorted({len(row.records) for row in rows})
    ran = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return (f"Seeds: the {len(rows)} rows behind these comparisons ran {ran} seed{'' if ran == '1' else 's'} each, "
            f"{sum(len(r.records) for r in rows)} cells, {now / 60:.1f} cell-minutes of the "
            f"{sum(secs(r) for r in records) / 60:.1f} these records took; {seeds} seeds each would add "
            f"{sum(missing.values())} cells, {add / 60:.1f} cell-minutes, about {add / workers / 60:.1f} min of wall "
            f"time on {workers} workers.")


def claims_markdown(verdicts: Sequence[Verdict], source: str = "", pages: Mapping[str, str] | None = None) -> str:
    decided = [v for v in verdicts if v.decided]
    elsewhere = [v for v in verdicts if not v.decided and v.claim.decided_by]
    undecidable = [v for v in verdicts if not v.decided and not v.claim.decided_by]
    tests = sum(len(v.comparisons) for v in decided)
    lines = ["# Claims of the papers, checked on these results", "", HEADER + (f" {source}" if source else ""), "",
             PAIRED_RULE,
             f"Holm's correction runs over all {tests} comparisons on this page. \"Matches or beats\" claims are "
             f"tested against d = −{_pt(MATCH_MARGIN)} pt (non-inferiority), in the same family.", "",
             "| Claim | Paper | Metric | Verdict | By scenario |", "|---|---|---|---|---|"]
    for v in decided:
        lines.append(f"| {v.claim.text} | {v.claim.paper} | {_metric_name(v.claim)} | **{v.verdict}** | "
                     f"{_scenario_summary(v)} |")
    for v in elsewhere:
        lines.append(f"| {v.claim.text} | {v.claim.paper} | {_metric_name(v.claim)} | {v.verdict}: "
                     f"{_link(v, pages)} | — |")
    lines.append("")
    if undecidable:
        lines += ["## Claims these results cannot decide", "",
                  f"{len(undecidable)} of the registry's {len(verdicts)} claims need rows these results do not have:",
                  ""]
        lines += [f"- {v.claim.text} ({v.claim.paper}): {v.note}" + (f"; {v.claim.setting}" if v.claim.setting
                                                                        else "") + "." for v in undecidable]
        lines.append("")
    for v in decided:
        lines += [f"## {v.claim.text}: {v.verdict}", "",
                  f"{v.claim.paper}. Relation: {_relation(v.claim)}. Metric: {_metric_name(v.claim)}."
                  + (f" Setting: {v.claim.setting}." if v.claim.setting else "")]
        if v.note:
            lines.append(f"Note: {v.note}.")
        lines += ["", "| Scenario | Backbone | Claimed better | Value | Claimed worse | Value | d [95% CI] | Seeds won "
                  "| p (t) | p (Holm) | p (exact) | Detectable | Verdict |",
                  "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for c in v.comparisons:
            p = c.paired
            mde = "—" if math.isnan(p.mde) else f"{_pt(p.mde)} pt"
            lines.append(f"| {c.scenario} | {c.backbone} | {c.better} | {_num(c.better_stats)} | {c.worse} | "
                         f"{_num(c.worse_stats)} | {_diff(c)} | {p.seeds_won} | {_p(p.t_p)} | {_p(p.holm_p)} | "
                         f"{_p(p.perm_p)} | {mde} | {c.verdict} |")
        lines.append("")
    return "\n".join(lines)


def claims_html(verdicts: Sequence[Verdict], pages: Mapping[str, str] | None = None) -> str:
    """The claims section of the HTML page (empty when there are no verdicts); `pages`: `suite_pages`."""
    if not verdicts:
        return ""
    esc = html.escape
    rows = []
    undecidable = [v for v in verdicts if not v.decided and not v.claim.decided_by]
    for v in verdicts:
        if not v.decided and not v.claim.decided_by:
            continue  # listed once below the table
        if v.decided:
            detail = "; ".join(f"{c.scenario}/{c.backbone}: {c.better} vs {c.worse} d = {_diff(c)}, "
                               f"{c.paired.seeds_won} seeds, p_Holm {_p(c.paired.holm_p)} → {c.verdict}"
                               for c in v.comparisons)
            verdict, cls = esc(v.verdict), v.verdict.split(" (")[0].replace(" ", "-")
        elif v.claim.decided_by:
            target = _page(v, pages, "index.html#claims")
            detail, verdict = "", f'decided by the <a href="{esc(target)}">{esc(v.claim.decided_by)}</a> suite'
            cls = "elsewhere"
        else:
            detail, verdict, cls = v.note, "cannot decide here", "cannot-decide"
        rows.append(f"<tr><td>{esc(v.claim.text)}</td><td>{esc(v.claim.paper)}</td><td>{esc(_metric_name(v.claim))}"
                    f"</td><td class=\"verdict-{esc(cls)}\">{verdict}</td><td>{esc(detail)}</td></tr>")
    return ('<section id="claims"><h2>Claims of the papers, checked on these results</h2>'
            f'<p class="note">{esc(PAIRED_RULE)} Full tables: <a href="claims.md">claims.md</a>.</p>'
            '<div class="scroll"><table><thead><tr><th>Claim</th><th>Paper</th><th>Metric</th><th>Verdict</th>'
            f"<th>Paired numbers (pt)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            + (f'<p class="note verdict-cannot-decide">These results cannot decide {len(undecidable)} of the '
               f"{len(verdicts)} claims: "
               + "; ".join(f"{esc(v.claim.text)} ({esc(v.note)})" for v in undecidable) + ".</p>"
               if undecidable else "") + "</section>")


def write_claims(verdicts: Sequence[Verdict], out_dir: Path | str, source: str = "",
                 pages: Mapping[str, str] | None = None) -> Path:
    """`claims.md` in `out_dir`; `source`: a provenance line (`provenance(records)`); `pages`: `suite_pages`."""
    path = Path(out_dir) / "claims.md"
    path.write_text(claims_markdown(verdicts, source, pages), encoding="utf-8")
    return path
