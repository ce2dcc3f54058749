"""open_clip's CoCa as a seq2seq backbone (bench/multimodal/open_clip_coca.py): a local weights file is what the
model holds, a missing download offline is a clear error, a tiny CoCa of the real BPE vocabulary trains a seq2seq
method on the miniature real-format stream through the cell's own path, grounding is refused on it, and the paper
suite (bench/suites/multimodal_paper.yaml) puts the six methods on the real CoCa without touching the classifiers'
families."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from bench.contract import mini_data
from bench.multimodal.open_clip_coca import COCA_B32, TEST_COCA, load_open_clip_coca, tiny_coca_model
from bench.run.cell import CellConfig
from bench.run.seq2seq_cell import prepare_seq2seq_run, run_seq2seq_cell, scene_backbone

SIZES = {"n_train": 4, "n_val": 1, "n_test": 2, "image_size": 32}
FAST = {"steps": 3, "batch_size": 2, "max_new_tokens": 3}


@pytest.fixture
def weights(tmp_path) -> tuple[str, dict[str, torch.Tensor]]:
    """A trained-looking checkpoint of the tiny architecture: random weights, saved as safetensors."""
    torch.manual_seed(7)
    state = {k: v.contiguous() for k, v in tiny_coca_model().state_dict().items()}
    path = tmp_path / "tiny_coca.safetensors"
    save_file(state, str(path))
    return str(path), state


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    return mini_data.write_ofa_tasks(tmp_path / "data")


def test_a_local_weights_file_is_what_the_model_holds(weights, tmp_path):
    path, state = weights
    backbone = load_open_clip_coca(TEST_COCA, path)
    assert all(torch.equal(v, state[k]) for k, v in backbone.model.state_dict().items())
    assert backbone.tokenizer.vocab_size == backbone.model.text.vocab_size == 49408
    assert backbone.context_length == backbone.tokenizer.context_length == 76
    random = load_open_clip_coca(TEST_COCA, "none")
    assert not torch.equal(random.model.text.token_embedding.weight, state["text.token_embedding.weight"])
    with pytest.raises(FileNotFoundError, match="absent.safetensors does not exist"):
        load_open_clip_coca(TEST_COCA, str(tmp_path / "absent.safetensors"))
    other = tmp_path / "other.safetensors"  # another architecture: no multimodal decoder
    save_file({k: v for k, v in state.items() if not k.startswith("text_decoder.")}, str(other))
    with pytest.raises(ValueError, match=r"other.safetensors does not load into coca_bpe_test_micro: .*text_decoder"):
        load_open_clip_coca(TEST_COCA, str(other))
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.bin does not load into coca_bpe_test_micro"):
        load_open_clip_coca(TEST_COCA, str(tmp_path / "junk.bin"))


def test_a_missing_download_offline_is_a_clear_error(monkeypatch):
    from open_clip import pretrained

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(pretrained, "download_pretrained", offline)
    with pytest.raises(RuntimeError, match=r"coca_ViT-B-32 / laion2b_s13b_b90k are not in open_clip's cache .*"
                                           r"give the suite `weights:` a local checkpoint file"):
        load_open_clip_coca(COCA_B32)


def test_a_tiny_coca_of_the_real_vocabulary_trains_a_method_on_the_real_format_stream(data, weights):
    path, state = weights
    cfg = CellConfig("mm_real_tasks", "seq2seq_lora", TEST_COCA, 0, {**FAST, "beam_size": 2}, SIZES, weights=path)
    run = prepare_seq2seq_run(cfg, torch.device("cpu"))
    assert run.scenario.eval_kinds == ["caption", "vqa", "entailment"]
    assert torch.equal(run.backbone.model.text.token_embedding.weight, state["text.token_embedding.weight"])
    before = [p.detach().clone() for p in run.trained]
    run.train_task(0, run.scenario.experiences[0])
    assert any(not torch.equal(a, b) for a, b in zip(before, run.trained))  # the low-rank factors moved
    parts = run_seq2seq_cell(cfg, torch.device("cpu"))  # checks the frozen weights bit for bit at its end
    results = parts["results"]
    assert results["eval_names"] == ["caption/coco", "vqa/vqav2", "entailment/snli_ve"]
    assert {"cider", "bleu4", "vqa_accuracy", "entailment_accuracy"} <= set(results["matrices"])
    assert all(isinstance(p, str) for preds in results["sample_predictions"].values() for p in preds)
    assert parts["strategy"]["backbone_family"] == "coca" and 0 < parts["strategy"]["trainable_share"] < 0.01
    assert parts["decoding"]["beam_size"] == 2 and "final_score" in parts["metrics"]


def test_grounding_is_refused_on_the_coca_before_any_weights_load(monkeypatch):
    import bench.run.seq2seq_cell as cell_module

    monkeypatch.setattr(cell_module, "scene_backbone", lambda *a: pytest.fail("the backbone was loaded"))
    cfg = CellConfig("mm_tasks_grounding", "seq2seq_finetune", TEST_COCA, 0, FAST,
                     {"n_train": 1, "n_test": 1, "per_scene": 1})
    with pytest.raises(ValueError, match=r"grounding.*location tokens <bin_i>.*BPE vocabulary has none"):
        prepare_seq2seq_run(cfg, torch.device("cpu"))


def test_seq2seq_cells_refuse_a_coca_that_is_no_seq2seq_backbone():
    with pytest.raises(ValueError, match=r"open_clip CoCa \(coca_ViT-B-32.laion2b_s13b_b90k.*not 'coca_glyph_tiny'"):
        scene_backbone("coca_glyph_tiny", None, 0)


def test_the_suite_checks_name_the_same_open_clip_cocas_the_loader_builds():
    from bench.multimodal.open_clip_coca import OPEN_CLIP_COCAS
    from bench.run.seq2seq_strategies import COCA_FAMILY, SEQ2SEQ_BACKBONES

    assert SEQ2SEQ_BACKBONES[COCA_FAMILY] == tuple(OPEN_CLIP_COCAS)


def test_the_paper_suite_runs_the_six_methods_on_the_real_coca():
    from open_clip import get_model_config

    from bench.core.strategy import STRATEGIES
    from bench.models.backbones import BACKBONES
    from bench.run.seq2seq_strategies import config_class_of
    from bench.run.suite import expand, load_suite

    suite = load_suite("multimodal_paper")
    cells, skipped = expand(suite)
    assert not skipped and len(cells) == 6 * 3
    assert {c.scenario for c in cells} == {"mm_real_tasks"} and {c.seed for c in cells} == {0, 1, 2}
    assert {c.backbone for c in cells} == {COCA_B32} and BACKBONES.get(COCA_B32).family == "coca"
    assert {c.strategy for c in cells} == {f"seq2seq_{m}" for m in ("finetune", "deep_prompt", "input_prompt",
                                                                   "bitfit", "adapter", "lora")}
    configs = {c.strategy: config_class_of(c.strategy).from_dict(c.strategy_config) for c in cells}
    deep = configs["seq2seq_deep_prompt"]
    assert (deep.length, deep.depth, deep.reparam) == (100, 0, False)  # OFA's prompt-tuning script
    assert {(c.beam_size, c.max_new_tokens, c.length_penalty) for c in configs.values()} == {(5, 16, 1.0)}
    attacked = {name for name, c in configs.items() if c.robustness == "attacks"}
    assert attacked == {"seq2seq_finetune", "seq2seq_deep_prompt"} and cells[0].robustness
    size = get_model_config("coca_ViT-B-32")["vision_cfg"]["image_size"]
    assert {c.scenario_overrides["image_size"] for c in cells} == {size}  # the stream is drawn at the input size
    assert STRATEGIES.get("ofa_prompt_coca").backbone_families == ("coca",)  # the classifiers' families stay
