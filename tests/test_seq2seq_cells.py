"""Multimodal cells through the benchmark's own paths: suites name the seq2seq strategies (a wrong name or field is
refused before anything is built), `run_cell` writes one record with a metric matrix per official metric, a second
run reads it instead of computing it, and the leaderboards give it a row in its task kinds' tables."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from bench.report.leaderboard import build_leaderboards
from bench.run.cell import CellConfig
from bench.run.runner import StoredRecord, run_cell
from bench.run.seq2seq_metrics import summarize_multimodal
from bench.run.suite import SuiteError, expand, load_suite

TINY = {"kinds": ["caption", "vqa"], "n_train": 3, "n_test": 2, "per_scene": 1}
SUITE = """
name: mm-test
version: 1
seeds: [0]
backbones: {scene: scene_coca}
scenarios: [mm_tasks]
scenario_overrides: {mm_tasks: {n_train: 3, n_test: 2, per_scene: 1}}
strategies:
"""


def _suite(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "mm.yaml"
    path.write_text(SUITE + entries, encoding="utf-8")
    return path


def test_multimodal_scenarios_are_registered_streams_of_their_kinds() -> None:
    from scenarios.catalog import build_scenario

    tasks = build_scenario("mm_tasks_grounding", 0, n_train=2, n_test=2, per_scene=1)
    assert tasks.kind == "multimodal_task_incremental"
    assert tasks.eval_kinds == ["caption", "vqa", "entailment", "grounding"]
    assert all(e.train and e.test and {x.kind for x in e.train} == {e.kind} for e in tasks.experiences)
    styles = build_scenario("mm_vqa_styles", 1, n_train=2, n_test=2, per_scene=1)
    assert styles.eval_names == ["vqa/clean", "vqa/outline", "vqa/texture", "vqa/noisy"]
    assert styles.describe()["domains"] == ["clean", "outline", "texture", "noisy"] and styles.seed == 1
    train_ids = {x.scene_id for e in styles.experiences for x in e.train}
    assert not train_ids & {x.scene_id for e in styles.experiences for x in e.test}  # held-out scenes


def test_seq2seq_strategies_expand_and_bad_names_or_fields_fail_before_any_work(tmp_path: Path) -> None:
    good = _suite(tmp_path, "  - {name: seq2seq_deep_prompt, config: {length: 4, depth: 1, reparam: true}}\n"
                            "  - {name: seq2seq_finetune}\n  - {name: linear_probe}\n")
    cells, skipped = expand(load_suite(str(good)))
    assert [(c.strategy, c.backbone, c.scenario) for c in cells] == [
        ("seq2seq_deep_prompt", "scene_coca", "mm_tasks"), ("seq2seq_finetune", "scene_coca", "mm_tasks")]
    assert skipped == ["linear_probe on mm_tasks: multimodal_task_incremental not supported"]
    resolved = cells[0].resolved()["strategy_config"]
    assert (resolved["length"], resolved["depth"], resolved["reparam"], resolved["steps"]) == (4, 1, True, 60)
    with pytest.raises(SuiteError, match=r"unknown strategy 'seq2seq_deep_promt'\. Did you mean 'seq2seq_deep_"):
        load_suite(str(_suite(tmp_path, "  - {name: seq2seq_deep_promt}\n")))
    with pytest.raises(SuiteError, match="lenght"):
        load_suite(str(_suite(tmp_path, "  - {name: seq2seq_deep_prompt, config: {lenght: 4}}\n")))
    with pytest.raises(SuiteError, match="beam_size"):
        load_suite(str(_suite(tmp_path, "  - {name: seq2seq_lora, config: {beam_size: 0}}\n")))
    bad = tmp_path / "bad.yaml"  # a scenario override the stream's builder does not take
    bad.write_text(SUITE.replace("per_scene: 1}", "per_scene: 1, kindz: [vqa]}") + "  - {name: seq2seq_bitfit}\n")
    with pytest.raises(SuiteError, match=r"kindz: not a parameter of 'mm_tasks' \(did you mean 'kinds'\?\)"):
        load_suite(str(bad))


def test_the_multimodal_suite_runs_six_methods_at_the_scenarios_own_size_over_ten_seeds() -> None:
    """The `multimodal` suite (issue #24): the default suite's six seq2seq methods on mm_tasks and
    mm_grounding_styles at the builder's defaults, ten seeds (v10; v3-v9: five), generation attacks for the pair OFA-PT's
    robustness claim compares."""
    import inspect

    from scenarios.multimodal.scenario import multimodal_task_incremental

    suite = load_suite("multimodal")
    cells, skipped = expand(suite)
    methods = {"seq2seq_finetune", "seq2seq_deep_prompt", "seq2seq_input_prompt", "seq2seq_bitfit",
               "seq2seq_adapter", "seq2seq_lora"}
    assert not skipped and len(cells) == 120
    assert {c.strategy for c in cells} == methods and {c.seed for c in cells} == set(range(10))
    # v4: referring expressions too, as a style-incremental stream of their own (tuned with mm_tasks, the first)
    assert {c.scenario for c in cells} == {"mm_tasks", "mm_grounding_styles"}
    assert {c.backbone for c in cells} == {"scene_coca"}
    assert suite.scenario_overrides["mm_grounding_styles"] == suite.scenario_overrides["mm_tasks"]
    defaults = {k: v.default for k, v in inspect.signature(multimodal_task_incremental).parameters.items()
                if k in ("n_train", "n_test", "per_scene")}
    assert suite.scenario_overrides["mm_tasks"] == defaults == {"n_train": 64, "n_test": 32, "per_scene": 3}
    attacked = {c.strategy for c in cells if c.resolved()["strategy_config"]["robustness"] != "off"}
    assert attacked == {"seq2seq_finetune", "seq2seq_deep_prompt"} and not suite.robustness["autoattack"]


def test_a_multimodal_cell_records_its_matrices_caches_and_gets_a_leaderboard_row(tmp_path: Path) -> None:
    cfg = CellConfig("mm_tasks", "seq2seq_deep_prompt", "scene_coca", 0,
                     {"steps": 2, "length": 2, "max_new_tokens": 4}, dict(TINY))
    record = run_cell(cfg, tmp_path / "results", device="cpu", show_progress=False)
    assert record["status"] == "ok", record.get("error")
    results = record["results"]
    assert results["task_kinds"] == ["caption", "vqa"] and results["primary_metric"] == ["cider", "vqa_accuracy"]
    cider, vqa = results["matrices"]["cider"], results["matrices"]["vqa_accuracy"]
    assert [row[1] for row in cider] == [None, None] and [row[0] for row in vqa] == [None, None]  # the other kind
    assert all(isinstance(row[0], float) for row in cider) and isinstance(vqa[1][1], float)
    assert vqa[0][1] is None  # VQA not trained yet after the captioning task: not scored
    assert set(results["initial"]) == {"cider", "bleu4", "vqa_accuracy"}
    assert record["metrics"] == pytest.approx(summarize_multimodal(results, record.get("robustness")), nan_ok=True)
    assert record["decoding"]["decoding"] == "greedy" and record["decoding"]["max_new_tokens"] == 4
    strategy = record["strategy"]
    assert 0 < strategy["trainable_params"] < strategy["backbone_params"]  # the prompts only, the model frozen
    assert strategy["method"]["method"] == "deep_prompt" and strategy["method"]["length"] == 2
    assert record["training"]["task_seeds"] == [0, 1]
    assert record["env"]["weights"]["backbone"] == "scene_coca" and record["env"]["weights"]["sha256"]
    assert record["timing"]["train_seconds"] > 0 and record["memory"]["peak_mb"] > 0
    # idempotent: the second run reads the record
    again = run_cell(cfg, tmp_path / "results", device="cpu", show_progress=False)
    assert isinstance(again, StoredRecord) and again["cell_id"] == record["cell_id"]
    paths = build_leaderboards(tmp_path / "results", tmp_path / "boards")
    assert {"mm_caption.md", "mm_vqa.md", "mm_streams.md"} <= {p.name for p in paths}
    assert "| mm_tasks | seq2seq_deep_prompt |" in (tmp_path / "boards" / "mm_vqa.md").read_text()


def test_each_task_is_attacked_right_after_training_it(tmp_path: Path) -> None:
    """The robustness numbers of a task are those of the model right after training it (as OFA-PT attacks a model
    tuned on the task, and as every other claim reads a task), not of the model at the end of the stream, which
    has forgotten the first tasks: the clean metric on the attacked subset (here the whole test split) equals the
    matrix's diagonal. A cell attacked at the end of the stream has a new id."""
    robustness = {"subset_size": 8, "eps": ["2/255"], "pgd_steps": 1, "autoattack": False, "corruptions": False}
    cfg = CellConfig("mm_tasks", "seq2seq_finetune", "scene_coca", 0,
                     {"steps": 4, "lr": 0.01, "max_new_tokens": 4, "robustness": "attacks"}, dict(TINY),
                     robustness=robustness)
    record = run_cell(cfg, tmp_path / "results", device="cpu", show_progress=False)
    assert record["status"] == "ok", record.get("error")
    attacked, matrices = record["robustness"]["per_eval_set"], record["results"]["matrices"]
    assert record["robustness"]["when"] == "right after training each task"
    for i, (name, metric) in enumerate(zip(record["results"]["eval_names"], record["results"]["primary_metric"])):
        assert attacked[name]["subset_size"] == 2  # the whole test split
        assert attacked[name]["clean"][metric] == pytest.approx(matrices[metric][i][i])
    # the test can tell the two apart: training VQA moved the captions
    assert matrices["cider"][0][0] != pytest.approx(matrices["cider"][1][0])
    off = dataclasses.replace(cfg, strategy_config={**cfg.strategy_config, "robustness": "off"})
    assert "when" in cfg.resolved()["robustness"] and "when" not in off.resolved()["robustness"]


def test_a_failing_multimodal_cell_is_a_failed_record_not_a_crash(tmp_path: Path) -> None:
    cfg = CellConfig("mm_tasks", "seq2seq_deep_prompt", "scene_coca", 0, {"steps": 1, "depth": 99}, dict(TINY))
    record = run_cell(cfg, tmp_path, device="cpu", show_progress=False)
    assert record["status"] == "failed" and "depth 99" in record["error"]
    assert not math.isnan(record["timing"]["total_seconds"])
