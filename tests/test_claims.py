"""Tests for bench.report.claims: doctored per-seed records for each verdict (holds, fails, depends on the scenario,
undecided), the paired numbers checked against scipy, the registry's directions, and the page."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from bench.report.claims import CLAIMS, claims_html, claims_markdown, evaluate_claims, load_claims, write_claims
from test_html_report import record, robust


def b2n(strategy: str, new: float, seed: int, base: float = 0.9, scenario: str = "b2n") -> dict[str, Any]:
    return record(strategy, scenario, "base_to_new", [[base, new]], ["base", "new"], trainable=10, seed=seed)


def ci(strategy: str, forgetting: float, seed: int, final: float | None = None, scenario: str = "ci2",
       kind: str = "class_incremental", **kw: Any) -> dict[str, Any]:
    """Just-after 0.9 on task 1, then 0.9 - forgetting (avalanche forgetting = forgetting) and 0.8 on task 2; with
    `final`, the last row is [final, final] instead (final accuracy = final)."""
    last = [0.9 - forgetting, 0.8] if final is None else [final, final]
    return record(strategy, scenario, kind, [[0.9, 0.0], last], ["t1", "t2"], trainable=10, seed=seed, **kw)


def verdict(records: list[dict[str, Any]], key: str):
    return next(v for v in evaluate_claims(records) if v.claim.key == key)



def test_each_verdict_from_doctored_seeds() -> None:
    coop = [b2n("coop", 0.60 + 0.01 * s, s) for s in range(3)]
    holds = [b2n("cocoop", 0.70 + 0.012 * s, s) for s in range(3)] + coop
    v = verdict(holds, "cocoop_new")
    assert v.verdict == "holds" and v.comparisons[0].paired.seeds_won == "3/3"
    fails = [b2n("cocoop", 0.50 + 0.011 * s, s) for s in range(3)] + coop
    assert verdict(fails, "cocoop_new").verdict == "fails"
    noisy = [b2n("cocoop", v, s) for s, v in enumerate((0.5, 0.9, 0.7))] + coop
    v = verdict(noisy, "cocoop_new")
    assert v.verdict.startswith("undecided (smallest detectable difference ") and v.verdict.endswith(" pt)")
    # the detectable difference printed is the comparison's own: (t(.975,2) + t(.8,2)) * sd(d) / sqrt(3)
    d = [0.5 - 0.60, 0.9 - 0.61, 0.7 - 0.62]
    sd = float(sps.tstd(d))
    mde = (sps.t.ppf(0.975, 2) + sps.t.ppf(0.8, 2)) * sd / math.sqrt(3)
    assert f"{mde * 100:.1f} pt" in v.verdict
    # holds on one scenario, fails on another: depends on the scenario
    other = [b2n("coop", 0.60 + 0.01 * s, s, scenario="b2n_b") for s in range(3)]
    worse = [b2n("cocoop", 0.50 + 0.011 * s, s, scenario="b2n_b") for s in range(3)]
    assert verdict(holds + other + worse, "cocoop_new").verdict == "depends on the scenario"
    # holds on one scenario, undecided on another: the verdict says how much of the claim the data decided
    unclear = [b2n("cocoop", v, s, scenario="b2n_b") for s, v in enumerate((0.5, 0.9, 0.7))]
    assert verdict(holds + other + unclear, "cocoop_new").verdict == "holds (1 of 2 comparisons; 1 undecided)"
    # the same difference in every seed (a metric in steps of one example): no t-test, the exact test cannot decide
    steps = [b2n("cocoop", 0.6875 + 0.0625 * s, s) for s in range(3)] + \
        [b2n("coop", 0.5 + 0.0625 * s, s) for s in range(3)]
    assert verdict(steps, "cocoop_new").verdict == "undecided (no spread over seeds: exact test only)"


def test_paired_numbers_are_scipys_on_the_shared_seeds() -> None:
    cocoop = [b2n("cocoop", 0.70 + 0.012 * s, s) for s in range(4)]  # seed 3 has no coop partner
    coop = [b2n("coop", 0.60 + 0.01 * s, s) for s in range(3)]
    c = verdict(cocoop + coop, "cocoop_new").comparisons[0]
    a, b = [0.70 + 0.012 * s for s in range(3)], [0.60 + 0.01 * s for s in range(3)]
    assert c.paired.n == 3 and c.paired.t_p == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert c.paired.perm_p == pytest.approx(0.25)


def test_lower_is_better_for_forgetting_and_missing_rows_are_listed_once() -> None:
    records = [ci("l2p", 0.05 + 0.001 * s, s) for s in range(3)] + [ci("naive", 0.6 + 0.01 * s, s) for s in range(3)]
    v = verdict(records, "l2p_forgets_less")
    assert v.verdict == "holds" and v.comparisons[0].paired.mean_diff > 0
    cannot = verdict(records, "simplecil_vs_prompts")
    assert cannot.verdict == "cannot decide here" and "simplecil did not run" in cannot.note
    text = claims_markdown(evaluate_claims(records))
    assert "## Claims these results cannot decide" in text and "**not run**" not in text
    assert text.count(cannot.claim.text) == 1
    page = claims_html(evaluate_claims(records))
    assert page.count(cannot.claim.text) == 1 and "These results cannot decide" in page


def test_holm_runs_over_the_whole_page() -> None:
    # a weak holds (paired p = 0.013) alone holds; among many comparisons Holm makes it undecided
    weak = [ci("l2p", 0.3, s, final=f) for s, f in enumerate((0.62, 0.64, 0.645))] + \
        [ci("replay", 0.3, s, final=f) for s, f in enumerate((0.60, 0.61, 0.62))]
    assert verdict(weak, "l2p_vs_replay").verdict == "holds"
    noise = [ci(name, 0.3, s, final=f) for name in ("ewc", "lwf", "naive", "vpt_shallow", "vpt_deep", "simplecil",
                                                     "ranpac", "full_finetune")
             for s, f in enumerate((0.5, 0.9, 0.7))]
    crowded = verdict(weak + noise, "l2p_vs_replay")
    assert crowded.verdict.startswith("undecided") and crowded.comparisons[0].paired.holm_p > 0.05


def test_matches_or_beats_holds_within_the_margin_and_states_the_direction() -> None:
    simple = [ci("simplecil", 0.1, s, final=0.80 + 0.001 * s) for s in range(3)]
    vpt = [ci("vpt_deep", 0.1, s, final=0.80 + 0.001 * s + x) for s, x in enumerate((0.002, 0.003, 0.004))]
    v = verdict(simple + vpt, "simplecil_vs_prompts")
    assert v.verdict == "holds"  # d = -0.2 to -0.4 pt: significantly above -1 pt, matches
    assert v.comparisons[0].paired.null == pytest.approx(-0.01)
    far = [ci("vpt_deep", 0.1, s, final=0.80 + 0.001 * s + x) for s, x in enumerate((0.05, 0.052, 0.049))]
    assert verdict(simple + far, "simplecil_vs_prompts").verdict == "fails"
    # worse in every seed, significantly (p 0.04 against 0), but by less than the margin: a match, not a failure
    within = [ci("vpt_deep", 0.1, s, final=0.80 + 0.001 * s + d) for s, d in enumerate((0.003, 0.006, 0.004))]
    assert sps.ttest_1samp([-0.003, -0.006, -0.004], 0.0).pvalue < 0.05
    assert verdict(simple + within, "simplecil_vs_prompts").verdict == "holds"


def test_matches_or_beats_is_the_t_test_against_minus_the_margin_in_the_holm_family() -> None:
    """The non-inferiority p is scipy's one-sample t-test of d against -1 pt; a match whose uncorrected 95% interval
    lies above -1 pt but whose test does not survive Holm over a crowded page is undecided, not a match."""
    d = (0.002, 0.012, 0.007)  # the prompt row beats SimpleCIL by 0.2-1.2 pt: d = -0.7 pt, interval about [-1.9, +0.5]
    simple = [ci("simplecil", 0.1, s, final=0.80) for s in range(3)]
    vpt = [ci("vpt_deep", 0.1, s, final=0.80 + x) for s, x in enumerate(d)]
    diffs = [-x for x in d]
    c = verdict(simple + vpt, "simplecil_vs_prompts").comparisons[0]
    assert c.paired.t_p == pytest.approx(sps.ttest_1samp(diffs, -0.01).pvalue)
    shifted = np.array(diffs) + 0.01  # the exact test is of d against -1 pt too
    exact = sps.permutation_test((shifted, np.zeros(3)), lambda x, y, axis: np.mean(x - y, axis=axis),
                                 permutation_type="samples").pvalue
    assert c.paired.perm_p == pytest.approx(exact)
    # close to the margin: the interval lies above -1 pt (p < 0.05 alone), Holm over 15 comparisons undoes it
    near = [ci("vpt_deep", 0.1, s, final=0.80 + x) for s, x in enumerate((0.005, 0.006, 0.007))]
    alone = verdict(simple + near, "simplecil_vs_prompts").comparisons[0].paired
    assert alone.ci[0] > -0.01 and alone.t_p < 0.05
    noise = [ci(name, 0.3, s, final=f) for name in ("ewc", "lwf", "naive", "l2p", "replay", "full_finetune")
             for s, f in enumerate((0.5, 0.9, 0.7))]
    crowded = verdict(simple + near + noise, "simplecil_vs_prompts").comparisons[0]
    assert crowded.paired.ci[0] > -0.01 and crowded.paired.holm_p >= 0.05 and crowded.verdict == "undecided"


def test_registry_states_the_papers_directions() -> None:
    claims = {c.key: c for c in CLAIMS}
    assert claims["simplecil_vs_prompts"].better == ("simplecil",)
    assert {"vpt_shallow", "vpt_deep", "l2p", "ofa_prompt"} <= set(claims["simplecil_vs_prompts"].worse)
    assert claims["ranpac_vs_prompts"].better == ("ranpac",)
    for key in ("l2p_vs_replay", "l2p_vs_regularisation", "vpt_vs_full", "vpt_low_data", "ofa_vs_finetune",
                "ofa_vs_peft", "cocoop_hm"):
        assert key in claims
    assert claims["ofa_deeper"].decided_by == "ofa_ablation"


@pytest.mark.parametrize("fields, error", [
    ("relation: sometimes, better: [a], worse: [b]", "relation must be"),
    ("factor: reparam, factor_favours: middle", "factor_favours must be one of")])
def test_a_malformed_registry_entry_is_a_one_line_error(tmp_path: Path, fields: str, error: str) -> None:
    bad = tmp_path / "claims.yaml"
    bad.write_text(f"- {{key: x, claim: y, paper: z, metric: final_accuracy, kinds: [class_incremental], {fields}}}\n")
    with pytest.raises(ValueError, match=f"'x': {error}"):
        load_claims(bad)


def test_pgd_claim_reads_the_robustness_entry() -> None:
    prompt = [ci("vpt_deep", 0.1, s, robustness=robust(0.8 + 0.001 * s)) for s in range(3)]
    full = [ci("full_finetune", 0.1, s, robustness=robust(0.5 + 0.002 * s)) for s in range(3)]
    assert verdict(prompt + full, "prompt_pgd").verdict == "holds"


def ofa(length: int, depth: int, final: float, seed: int = 0, reparam: bool = False) -> dict[str, Any]:
    rec = record("ofa_prompt", "ci2", "class_incremental", [[0.9, 0.0], [final, final]], ["t1", "t2"],
                 trainable=10, seed=seed)
    rec["config"]["strategy_config"] = {"length": length, "depth": depth, "reparam": reparam, "epochs": 3}
    rec["strategy"]["label"] = f"ofa_L{length}_D{depth}" + ("_reparam" if reparam else "")
    return rec


def test_the_reparameterisation_claim_is_the_papers_no_consistent_gain():
    """OFA-PT (Table 4) finds the MLP helping on some tasks and hurting on others and cannot conclude; the registry
    said "reparameterised prompts are better". Its claim is now plain prompts matching or beating reparameterised
    ones: the plain variant is the `better` side, and a clear MLP win fails it."""
    claim = {c.key: c for c in CLAIMS}["ofa_reparam"]
    assert (claim.relation, claim.factor_favours) == ("matches_or_beats", "smallest")
    assert "cannot conclude" in claim.claim
    plain_level = [ofa(8, 2, 0.70 + 0.01 * s, s) for s in range(3)] + [
        ofa(8, 2, 0.70 + 0.011 * s, s, reparam=True) for s in range(3)]
    mlp_wins = [ofa(8, 4, 0.50 + 0.01 * s, s) for s in range(3)] + [
        ofa(8, 4, 0.80 + 0.012 * s, s, reparam=True) for s in range(3)]
    v = verdict(plain_level + mlp_wins, "ofa_reparam")
    assert {(c.better, c.worse, c.verdict) for c in v.comparisons} == {
        ("ofa_L8_D2", "ofa_L8_D2_reparam", "holds"), ("ofa_L8_D4", "ofa_L8_D4_reparam", "fails")}


def test_ofa_factor_claims_compare_variants_that_differ_in_one_field_only() -> None:
    records = [ofa(2, 2, 0.5 + 0.01 * s, s) for s in range(3)] + [ofa(32, 2, 0.7 + 0.011 * s, s) for s in range(3)]
    records += [ofa(2, 6, 0.8 + 0.01 * s, s) for s in range(3)] + [ofa(32, 6, 0.6 + 0.012 * s, s) for s in range(3)]
    longer = verdict(records, "ofa_longer")
    assert {(c.better, c.worse, c.verdict) for c in longer.comparisons} == {
        ("ofa_L32_D2", "ofa_L2_D2", "holds"), ("ofa_L32_D6", "ofa_L2_D6", "fails")}
    assert longer.verdict == "depends on the method"
    # without variants, the page links the suite that decides them
    v = verdict(records[:3], "ofa_reparam")
    assert v.verdict == "decided by the ofa_ablation suite"
    text = claims_markdown(evaluate_claims(records[:3]))
    assert "[ofa_ablation/claims.md](ofa_ablation/claims.md)" in text
    assert 'href="ofa_ablation/index.html#claims"' in claims_html(evaluate_claims(records[:3]))


def test_claims_page_lists_every_claim_with_rule_and_numbers(tmp_path: Path) -> None:
    records = [b2n("cocoop", 0.80 + 0.011 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s)
                                                                         for s in range(3)]
    verdicts = evaluate_claims(records)
    text = write_claims(verdicts, tmp_path).read_text()
    assert all(claim.text in text for claim in CLAIMS)
    assert "| b2n | vit_glyph_tiny | cocoop | 81.1 ± 1.1 (n=3) | coop | 61.0 ± 1.0 (n=3) | +20.1 [+19.9, +20.3] | 3/3 " \
        in text
    assert "Holm" in text and "exact" in text
    assert 'id="claims"' in claims_html(verdicts) and "verdict-holds" in claims_html(verdicts)


def test_leaderboards_write_claims_md_and_link_it_from_index_and_the_page(tmp_path: Path) -> None:
    from bench.core.store import ResultStore
    from bench.report.leaderboard import build_leaderboards

    store = ResultStore(tmp_path / "results")
    for rec in [b2n("cocoop", 0.80 + 0.011 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s)
                                                                          for s in range(3)]:
        store.write(rec)
    build_leaderboards(tmp_path / "results", tmp_path / "boards")
    claims = (tmp_path / "boards" / "claims.md").read_text()
    assert "**holds**" in claims and "Generated from 6 finished result records computed by code version(s) test." in claims
    assert "[claims.md](claims.md)" in (tmp_path / "boards" / "index.md").read_text()
    page = (tmp_path / "boards" / "index.html").read_text()
    assert '<a href="#claims">' in page and '<section id="claims">' in page and 'href="claims.md"' in page


def test_a_row_stands_for_its_strategy_never_for_its_label() -> None:
    naive = [ci("naive", 0.6 + 0.01 * s, s) for s in range(3)]
    impostor = [ci("linear_probe", 0.05 + 0.001 * s, s) for s in range(3)]
    for r in impostor:  # a linear probe whose free label says "l2p"
        r["strategy"]["label"] = r["config"]["label"] = "l2p"
    v = verdict(impostor + naive, "l2p_forgets_less")
    assert not v.comparisons and v.verdict == "cannot decide here"
    real = [ci("l2p", 0.05 + 0.001 * s, s) for s in range(3)]
    assert verdict(real + naive, "l2p_forgets_less").verdict == "holds"


def test_low_data_claims_are_decided_on_the_few_shot_scenario_only() -> None:
    full = [ci("full_finetune", 0.0, s, final=0.40 + 0.01 * s, scenario="glyphs_4shot") for s in range(3)]
    vpt = [ci("vpt_deep", 0.0, s, final=0.55 + 0.012 * s, scenario="glyphs_4shot") for s in range(3)]
    probe = [ci("linear_probe", 0.0, s, final=0.30 + 0.011 * s, scenario="glyphs_4shot") for s in range(3)]
    v = verdict(full + vpt + probe, "vpt_low_data")
    assert v.verdict == "holds" and {(c.scenario, c.better) for c in v.comparisons} == {("glyphs_4shot", "vpt_deep")}
    assert verdict(full + vpt + probe, "few_params_low_data").verdict == "fails"
    # the same numbers on a stream with all its images decide VPT's general claim, not the low-data one
    stream = [ci(name, 0.0, s, final=base + step * s, scenario="ci5_glyphs")
              for name, base, step in (("full_finetune", 0.40, 0.01), ("vpt_deep", 0.55, 0.012)) for s in range(3)]
    assert verdict(stream, "vpt_low_data").verdict == "cannot decide here"
    assert verdict(stream, "vpt_vs_full").verdict == "holds"


def test_seed_cost_counts_the_rows_behind_comparisons_from_their_timings() -> None:
    from bench.report.claims import seed_cost

    records = [b2n("cocoop", 0.80 + 0.011 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s)
                                                                         for s in range(3)]
    other = [record("linear_probe", "b2n", "base_to_new", [[0.9, 0.5]], ["base", "new"], trainable=10, seed=s,
                    seconds=30.0) for s in range(3)]  # no claim compares it: not counted, but in the total
    text = seed_cost(records + other, evaluate_claims(records + other), seeds=5, workers=2)
    # 2 rows x 3 cells x 12 s = 1.2 cell-minutes of 1.2 + 1.5; 2 rows x 2 more seeds x 12 s = 0.8, / 2 workers = 0.4
    assert text == ("Seeds: the 2 rows behind these comparisons ran 3 seeds each, 6 cells, 1.2 cell-minutes of the "
                    "2.7 these records took; 5 seeds each would add 4 cells, 0.8 cell-minutes, about 0.4 min of wall "
                    "time on 2 workers.")
    assert seed_cost(other, evaluate_claims(other)) == ""


def test_sub_suite_pages_link_the_ablation_page_as_a_sibling(tmp_path: Path) -> None:
    """The OFA factor claims link the ofa_ablation suite's page: a subfolder of the default suite's leaderboards/,
    a sibling of another suite's (leaderboards/robustness/); every link resolves from the page that holds it."""
    from bench.core.store import ResultStore
    from bench.report.leaderboard import build_leaderboards

    store = ResultStore(tmp_path / "results")
    for rec in [b2n("cocoop", 0.80 + 0.011 * s, s) for s in range(3)] + [b2n("coop", 0.60 + 0.01 * s, s)
                                                                          for s in range(3)]:
        store.write(rec)
    boards = tmp_path / "leaderboards"
    (boards / "ofa_ablation").mkdir(parents=True)
    (boards / "ofa_ablation" / "claims.md").write_text("# ablation claims\n")
    (boards / "ofa_ablation" / "index.html").write_text("<html></html>\n")
    build_leaderboards(tmp_path / "results", boards)
    build_leaderboards(tmp_path / "results", boards / "robustness")
    for folder, prefix in ((boards, "ofa_ablation/"), (boards / "robustness", "../ofa_ablation/")):
        claims = (folder / "claims.md").read_text()
        assert f"[ofa_ablation/claims.md]({prefix}claims.md)" in claims
        assert f'href="{prefix}index.html#claims"' in (folder / "index.html").read_text()
        assert (folder / prefix / "claims.md").is_file() and (folder / prefix / "index.html").is_file()


def test_every_committed_claims_page_comes_from_records_of_committed_code() -> None:
    """Each committed page names the code versions of its records; none may be "-dirty" (a record computed from a
    tree with uncommitted code edits cannot be reproduced from any commit)."""
    import re

    pages = sorted((Path(__file__).resolve().parent.parent / "leaderboards").rglob("claims.md"))
    assert len(pages) >= 4  # default, multimodal, ofa_ablation, robustness
    for page in pages:
        versions = re.search(r"computed by code version\(s\) ([^.]+)\.", page.read_text())
        assert versions, f"{page}: no code versions named"
        assert "-dirty" not in versions.group(1), f"{page}: records from uncommitted code: {versions.group(1)}"
