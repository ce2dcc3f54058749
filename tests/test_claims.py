"""Tests for bench.report.claims: constructed records for each verdict (holds, fails, undecided, mixed, not run)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report.claims import CLAIMS, claims_html, evaluate_claims, write_claims
from test_html_report import record, robust


def b2n(strategy: str, new: float, seed: int) -> dict[str, Any]:
    return record(strategy, "b2n", "base_to_new", [[0.9, new]], ["base", "new"], trainable=10, seed=seed)


def ci(strategy: str, forgetting: float, seed: int, **kw: Any) -> dict[str, Any]:
    # just-after 0.9 on task 1, final 0.9 - forgetting: avalanche forgetting = forgetting
    return record(strategy, "ci2", "class_incremental", [[0.9, 0.0], [0.9 - forgetting, 0.8]], ["t1", "t2"],
                  trainable=10, seed=seed, **kw)


def verdict(records: list[dict[str, Any]], key: str):
    return next(v for v in evaluate_claims(records) if v.claim.key == key)


def test_cocoop_claim_holds_fails_or_is_undecided_by_the_intervals() -> None:
    holds = [b2n("cocoop", 0.80 + 0.01 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s) for s in range(3)]
    assert verdict(holds, "cocoop_new").verdict == "holds"
    fails = [b2n("cocoop", 0.50 + 0.01 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s) for s in range(3)]
    assert verdict(fails, "cocoop_new").verdict == "fails"
    noisy = [b2n("cocoop", v, s) for s, v in enumerate((0.5, 0.9, 0.7))] + [b2n("coop", 0.65, s) for s in range(3)]
    v = verdict(noisy, "cocoop_new")
    assert v.verdict == "undecided" and v.comparisons[0].better_stats[2] == 3
    assert verdict(holds[:3], "cocoop_new").verdict == "not run"


def test_lower_is_better_for_forgetting_and_missing_strategies_are_not_run() -> None:
    records = [ci("l2p", 0.05, s) for s in range(2)] + [ci("naive", 0.6 + 0.01 * s, s) for s in range(2)]
    assert verdict(records, "l2p_forgets_less").verdict == "holds"
    # simplecil / ranpac not registered or not run: "not run", with the reason
    v = verdict(records, "prompts_vs_simplecil")
    assert v.verdict == "not run" and "simplecil" in v.note


def test_pgd_claim_reads_the_robustness_entry() -> None:
    prompt = [ci("vpt_deep", 0.1, s, robustness=robust(0.8)) for s in range(2)]      # keeps (0.65/.8+.4/.8)/2
    full = [ci("full_finetune", 0.1, s, robustness=robust(0.5)) for s in range(2)]  # keeps (.35/.5+.1/.5)/2
    assert verdict(prompt + full, "prompt_pgd").verdict == "holds"


def ofa(length: int, depth: int, final: float, seed: int = 0) -> dict[str, Any]:
    rec = record("ofa_prompt", "ci2", "class_incremental", [[0.9, 0.0], [final, final]], ["t1", "t2"],
                 trainable=10, seed=seed)
    rec["config"]["strategy_config"] = {"length": length, "depth": depth, "reparam": False, "epochs": 3}
    rec["strategy"]["label"] = f"ofa_L{length}_D{depth}"
    return rec


def test_ofa_factor_claims_compare_variants_that_differ_in_one_field_only() -> None:
    records = [ofa(2, 2, 0.5), ofa(32, 2, 0.7), ofa(2, 6, 0.8), ofa(32, 6, 0.6)]
    longer = verdict(records, "ofa_longer")
    assert {(c.better, c.worse, c.verdict) for c in longer.comparisons} == {
        ("ofa_L32_D2", "ofa_L2_D2", "holds"), ("ofa_L32_D6", "ofa_L2_D6", "fails")}
    assert longer.verdict == "mixed" and "n = 1" in longer.note
    assert verdict(records, "ofa_deeper").verdict == "mixed"
    assert verdict(records, "ofa_reparam").verdict == "not run"


def test_claims_page_lists_every_claim_with_rule_and_numbers(tmp_path: Path) -> None:
    records = [b2n("cocoop", 0.80 + 0.01 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s) for s in range(3)]
    verdicts = evaluate_claims(records)
    text = write_claims(verdicts, tmp_path).read_text()
    assert all(claim.text in text for claim in CLAIMS)
    assert "| b2n | vit_glyph_tiny | cocoop | 81.0 ± 1.0 (n=3) | coop | 61.0 ± 1.0 (n=3) | holds |" in text
    assert "t(0.975, n−1)" in text
    assert 'id="claims"' in claims_html(verdicts) and "verdict-holds" in claims_html(verdicts)


def test_leaderboards_write_claims_md_and_link_it_from_index_and_the_page(tmp_path: Path) -> None:
    from bench.core.store import ResultStore
    from bench.report.leaderboard import build_leaderboards

    store = ResultStore(tmp_path / "results")
    for rec in [b2n("cocoop", 0.80 + 0.01 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s)
                                                                         for s in range(3)]:
        store.write(rec)
    build_leaderboards(tmp_path / "results", tmp_path / "boards")
    assert "**holds**" in (tmp_path / "boards" / "claims.md").read_text()
    assert "[claims.md](claims.md)" in (tmp_path / "boards" / "index.md").read_text()
    page = (tmp_path / "boards" / "index.html").read_text()
    assert '<a href="#claims">' in page and '<section id="claims">' in page and 'href="claims.md"' in page
