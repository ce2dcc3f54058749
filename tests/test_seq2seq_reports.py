"""The multimodal task kinds on the leaderboards, from doctored records (no torch): the summary recomputed from the
metric matrices equals its hand-computed values, a doctored stored metric never reaches a table, one table per
task kind with its official metrics, the sanity check per task kind, and OFA-PT's claims decided per task kind by
the paired rule."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from bench.core.store import ResultStore
from bench.report.claims import evaluate_claims
from bench.report.intake import intake
from bench.report.leaderboard import build_leaderboards
from bench.report.multimodal import CHECK, multimodal_findings
from bench.run.seq2seq_metrics import PRIMARY, summarize_multimodal

KINDS = ("caption", "vqa", "entailment")


def results(learned: list[float], final: list[float], initial: list[float],
            kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    """Matrices with task j at `initial[j]` before it is trained, `learned[j]` right after and until the last row,
    and `final[j]` after the last task (caption's BLEU-4 at half its CIDEr)."""
    n = len(kinds)
    primary = [[(final[j] if i == n - 1 else learned[j] if j <= i else initial[j]) for j in range(n)]
               for i in range(n)]
    matrices: dict[str, list] = {}
    for j, kind in enumerate(kinds):
        metric = PRIMARY[kind]
        matrices.setdefault(metric, [[None] * n for _ in range(n)])
        for i in range(n):
            matrices[metric][i][j] = primary[i][j]
        if kind == "caption":
            matrices.setdefault("bleu4", [[None] * n for _ in range(n)])
            for i in range(n):
                matrices["bleu4"][i][j] = primary[i][j] / 2
    starts: dict[str, list] = {}
    for j, kind in enumerate(kinds):
        starts.setdefault(PRIMARY[kind], [None] * n)[j] = initial[j]
        if kind == "caption":
            starts.setdefault("bleu4", [None] * n)[j] = initial[j] / 2
    return {"eval_names": [f"{k}/clean" for k in kinds], "task_kinds": list(kinds),
            "primary_metric": [PRIMARY[k] for k in kinds], "matrices": matrices, "initial": starts}


def mm(strategy: str, seed: int, final: list[float], *, learned: list[float] | None = None,
       initial: float = 0.05, kept: float | None = None, scenario: str = "mm_tasks",
       config: dict[str, Any] | None = None, label: str | None = None) -> dict[str, Any]:
    """A finished multimodal cell in bench.run.runner's layout."""
    res = results(learned or final, final, [initial] * len(final))
    robustness = None
    if kept is not None:  # each task keeps `kept` of its final metric under PGD (generation_robustness's layout)
        robustness = {"per_eval_set": {name: {"metric": PRIMARY[k], "clean": {PRIMARY[k]: final[j], "loss": 1.0},
                                              "pgd": {"1/255": {PRIMARY[k]: kept * final[j], "loss": 2.0}}}
                                       for j, (name, k) in enumerate(zip(res["eval_names"], KINDS))}}
    record = {"schema_version": 1, "cell_id": f"{scenario}-{label or strategy}-{seed}", "status": "ok", "error": None,
              "submitted": False,
              "config": {"scenario": scenario, "strategy": strategy, "backbone": "scene_coca", "seed": seed,
                         "strategy_config": config or {"steps": 40}, "scenario_overrides": {}, "weights": None,
                         "robustness": None, "protocol_version": 2},
              "env": {"code_version": "test", "packages": {}, "device": "cpu"},
              "scenario": {"name": scenario, "kind": "multimodal_task_incremental", "seed": seed, "num_steps": 3,
                           "eval_names": res["eval_names"], "task_kinds": list(KINDS)},
              "strategy": {"name": strategy, "label": label or strategy, "family": "seq2seq", "paper": "x",
                           "flags": {}, "backbone_family": "scene", "trainable_params": 100,
                           "backbone_params": 10_000, "trainable_share": 0.01},
              "results": res, "decoding": {"decoding": "greedy", "beam_size": 1, "max_new_tokens": 16,
                                           "length_penalty": 0.0},
              "timing": {"train_seconds": 3.0, "eval_seconds": 1.0, "total_seconds": 4.5},
              "memory": {"peak_mb": 400.0, "measure": "max RSS"}}
    if robustness:
        record["robustness"] = robustness
    record["metrics"] = summarize_multimodal(res, robustness)
    return record


def verdict(records: list[dict[str, Any]], key: str):
    return next(v for v in evaluate_claims(records) if v.claim.key == key)


def test_summary_equals_its_hand_computed_values() -> None:
    res = {"eval_names": ["caption/clean", "vqa/clean"], "task_kinds": ["caption", "vqa"],
           "matrices": {"cider": [[0.5, None], [0.3, None]], "bleu4": [[0.2, None], [0.1, None]],
                        "vqa_accuracy": [[None, 0.2], [None, 0.6]]},
           "initial": {"cider": [0.1, None], "bleu4": [0.0, None], "vqa_accuracy": [None, 0.05]}}
    robustness = {"per_eval_set": {
        "caption/clean": {"metric": "cider", "clean": {"cider": 0.3, "bleu4": 0.1},
                          "pgd": {"a": {"cider": 0.15}, "b": {"cider": 0.0}}, "corruptions": {"mean": 0.27}},
        "vqa/clean": {"metric": "vqa_accuracy", "clean": {"vqa_accuracy": 0.6}, "pgd": {"a": {"vqa_accuracy": 0.3}},
                      "corruptions": {"mean": 0.45}}}}
    got = summarize_multimodal(res, robustness)
    assert got["final_score"] == pytest.approx((0.3 + 0.6) / 2)
    assert got["learned_score"] == pytest.approx((0.5 + 0.6) / 2)
    assert got["initial_score"] == pytest.approx((0.1 + 0.05) / 2)
    assert got["forgetting"] == pytest.approx(0.5 - 0.3)  # the last task cannot have been forgotten
    assert (got["final_cider"], got["final_bleu4"], got["final_vqa_accuracy"]) == (0.3, 0.1, 0.6)
    assert (got["learned_cider"], got["initial_vqa_accuracy"]) == (0.5, 0.05)
    assert got["pgd_kept_official"] == pytest.approx(((0.075 / 0.3) + (0.3 / 0.6)) / 2)
    assert got["corruptions_kept_official"] == pytest.approx(((0.27 / 0.3) + (0.45 / 0.6)) / 2)
    assert "pgd_kept_official" not in summarize_multimodal(res)  # no robustness recorded: no number
    with pytest.raises(ValueError, match="no 'vqa_accuracy' matrix"):
        summarize_multimodal({**res, "matrices": {"cider": res["matrices"]["cider"]}})
    with pytest.raises(ValueError, match="not 2 x 2"):
        summarize_multimodal({**res, "matrices": {**res["matrices"], "cider": [[0.5, None]]}})


def test_intake_recomputes_a_doctored_metric_and_fails_unreadable_matrices() -> None:
    good = mm("seq2seq_finetune", 0, [0.6, 0.5, 0.7])
    doctored = mm("seq2seq_bitfit", 0, [0.2, 0.3, 0.4])
    doctored["metrics"]["final_vqa_accuracy"] = 0.99
    broken = mm("seq2seq_lora", 0, [0.2, 0.3, 0.4])
    broken["results"]["matrices"]["cider"] = [[0.1]]
    out, problems = intake([good, doctored, broken])
    assert out[0]["metrics"] == good["metrics"]
    assert out[1]["metrics"]["final_vqa_accuracy"] == pytest.approx(0.3)
    assert any("stored final_vqa_accuracy 0.99 differs" in p for p in problems)
    assert out[2]["status"] == "failed" and any("cannot be summarised" in p for p in problems)


def test_ofa_pt_claims_are_decided_per_task_kind_by_the_paired_rule() -> None:
    seeds = range(4)
    deep = [mm("seq2seq_deep_prompt", s, [0.70 + 0.012 * s, 0.60 + 0.01 * s, 0.80 + 0.011 * s], kept=0.8 + 0.01 * s)
            for s in seeds]
    for record in deep:  # the claims read each task right after training it, not after the stream: final is moot
        record["results"] = results([0.70 + 0.012 * record["config"]["seed"], 0.60 + 0.01 * record["config"]["seed"],
                                     0.80 + 0.011 * record["config"]["seed"]], [0.0, 0.0, 0.80], [0.05] * 3)
        record["metrics"] = summarize_multimodal(record["results"], record.get("robustness"))
    adapter = [mm("seq2seq_adapter", s, [0.50 + 0.01 * s, 0.40 + 0.013 * s, 0.60 + 0.01 * s]) for s in seeds]
    bitfit = [mm("seq2seq_bitfit", s, [0.40 + 0.011 * s, 0.30 + 0.012 * s, 0.50 + 0.014 * s]) for s in seeds]
    finetune = [mm("seq2seq_finetune", s, [0.95 + 0.01 * s, 0.90 + 0.012 * s, 0.97 + 0.001 * s],
                   kept=0.5 + 0.012 * s) for s in seeds]
    records = deep + adapter + bitfit + finetune
    peft = verdict(records, "ofa_mm_vs_peft")
    assert peft.verdict == "holds"
    assert {(c.scenario, c.worse) for c in peft.comparisons} == {
        (f"mm_tasks [{k}: {PRIMARY[k]}]", w) for k in KINDS for w in ("seq2seq_adapter", "seq2seq_bitfit")}
    vqa = next(c for c in peft.comparisons if "vqa" in c.scenario and c.worse == "seq2seq_adapter")
    assert vqa.paired.mean_diff == pytest.approx(0.20 - 0.003 * 1.5)  # 0.60+0.01s - (0.40+0.013s), mean over s
    assert verdict(records, "ofa_mm_vs_finetune").verdict == "fails"  # fine-tuning far ahead on every kind
    assert verdict(records, "ofa_mm_robust").verdict == "holds"  # 80% of the metric kept against 50%
    # without a fine-tuned row the comparable-to-fine-tuning claim says what is missing
    missing = verdict(deep + adapter, "ofa_mm_vs_finetune")
    assert missing.verdict == "cannot decide here" and "seq2seq_finetune did not run" in missing.note
    # the factor claims compare deep-prompt variants differing in one field only
    short = [mm("seq2seq_deep_prompt", s, [0.5 + 0.01 * s] * 3, config={"length": 2, "depth": 1}, label="L2")
             for s in seeds]
    long = [mm("seq2seq_deep_prompt", s, [0.6 + 0.012 * s] * 3, config={"length": 32, "depth": 1}, label="L32")
            for s in seeds]
    longer = verdict(short + long, "ofa_mm_longer")
    assert longer.verdict == "holds" and {(c.better, c.worse) for c in longer.comparisons} == {("L32", "L2")}


def test_sanity_check_per_task_kind() -> None:
    learned = [mm("seq2seq_adapter", s, [0.4, 0.3 + 0.01 * s, 0.5], learned=[0.4 + 0.01 * s, 0.01 + 0.001 * s, 0.5])
               for s in range(3)]  # VQA right after training (1-1.2%) below its untrained start (5%)
    findings = {f.row: f for f in multimodal_findings(learned) if f.check == CHECK}
    assert findings["seq2seq_adapter (scene_coca) [caption]"].verdict == "pass"
    assert findings["seq2seq_adapter (scene_coca) [vqa]"].verdict == "fail"
    assert findings["seq2seq_adapter (scene_coca) [entailment]"].verdict == "pass"


def test_leaderboards_have_a_table_per_task_kind(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    for s in range(3):
        store.write(mm("seq2seq_deep_prompt", s, [0.70 + 0.01 * s, 0.6, 0.8], kept=0.8))
        store.write(mm("seq2seq_finetune", s, [0.75, 0.62 + 0.01 * s, 0.81]))
    paths = build_leaderboards(tmp_path / "results", tmp_path / "boards")
    names = {p.name for p in paths}
    assert {"mm_caption.md", "mm_caption.csv", "mm_vqa.md", "mm_entailment.md", "mm_streams.md"} <= names
    assert "mm_grounding.md" not in names  # no stream here has referring expressions
    caption = (tmp_path / "boards" / "mm_caption.md").read_text()
    assert "| Scenario | Strategy | CIDEr-D (final) | BLEU-4 (final) |" in caption
    assert "| mm_tasks | seq2seq_deep_prompt | 71.0 ± 1.0 | 35.5 ± 0.5 |" in caption  # x100, mean ± sd
    rows = list(csv.DictReader((tmp_path / "boards" / "mm_vqa.csv").open()))
    finetune = next(r for r in rows if r["strategy"] == "seq2seq_finetune")
    assert float(finetune["final_vqa_accuracy_mean"]) == pytest.approx(0.63)
    assert float(finetune["seconds_mean"]) == 4.5 and finetune["n_seeds"] == "3"
    assert finetune["pgd_kept_official_mean"] == ""  # no robustness recorded: no number made up
    index = (tmp_path / "boards" / "index.md").read_text()
    assert "[caption](mm_caption.md)" in index and "No finished cells yet" not in index
    assert "the tables of their 6 finished cells are linked below" in index
    assert "Multimodal task kinds (official metrics)" in (tmp_path / "boards" / "index.html").read_text()
    sanity = (tmp_path / "boards" / "sanity.md").read_text()
    assert f"## {CHECK}" in sanity and "[vqa]" in sanity
    claims = (tmp_path / "boards" / "claims.md").read_text()
    assert "mm_tasks [caption: cider]" in claims
