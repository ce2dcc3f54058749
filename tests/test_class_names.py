"""Class names: the folder / split-file spelling is the class id in records; every text prompt reads it as the
official prompt learners do (CoOp, zero-shot CLIP, DAPL: `name.replace("_", " ")`)."""
from __future__ import annotations

import pytest
import torch

import strategies  # noqa: F401  (registers every strategy)
from bench.contract import mini_data
from bench.core.data import ScenarioInfo
from bench.core.strategy import STRATEGIES, build_strategy
from bench.models.backbones import create_backbone
from bench.models.text import prompt_name
from scenarios.sources import open_source

IRREGULAR = ["american_bulldog", "apple_pie", "Apply_Eye_Makeup", "car_side", "The_Eiffel_Tower",
             "ring (jewellery)", "Alarm_Clock"]


@pytest.mark.parametrize("name, expected", [
    ("american_bulldog", "american bulldog"), ("apple_pie", "apple pie"), ("Apply_Eye_Makeup", "Apply Eye Makeup"),
    ("car_side", "car side"), ("The_Eiffel_Tower", "The Eiffel Tower"), ("ring (jewellery)", "ring (jewellery)"),
    ("the digit 7", "digit 7"), ("the capital letter A", "capital letter A"), ("707-320", "707-320")])
def test_prompt_name_is_coops_rule(name, expected):
    assert prompt_name(name) == expected


def test_folder_names_stay_the_class_ids(tmp_path):
    mini_data.write_image_folder(tmp_path, classes=IRREGULAR, per_class=2)
    assert open_source("image_folder", tmp_path).class_names == sorted(IRREGULAR)
    mini_data.write_office_home(tmp_path / "oh", num_classes=3, per_class=1)
    names = open_source("office_home", tmp_path / "oh").class_names
    assert names == sorted(p.name for p in (tmp_path / "oh" / "office_home" / "Art").iterdir())


def _clip_strategies() -> list[str]:
    return [n for n in STRATEGIES.names() if STRATEGIES.get(n).flags.class_names]


@pytest.mark.parametrize("name", _clip_strategies())
def test_no_text_prompt_carries_an_underscore(name, monkeypatch):
    """Every string any class-name strategy hands its tokenizer: the names appear with spaces, never with '_'."""
    family = STRATEGIES.get(name).backbone_families[0]
    backbone = create_backbone({"clip": "clip_test_micro", "coca": "coca_test_micro"}[family])
    tokenizer = backbone.tokenizer
    seen: list[str] = []
    original = type(tokenizer).encode

    def spy(self, text, *args, **kwargs):
        seen.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "encode", spy)
    torch.manual_seed(0)
    info = (ScenarioInfo("domain_adaptation", len(IRREGULAR), IRREGULAR, ["art", "real_world"], "art", "real_world")
            if name == "dapl" else ScenarioInfo("base_to_new", len(IRREGULAR), IRREGULAR))
    strategy = build_strategy(name, backbone, info, {"n_ctx": 4, "n_dmx": 4} if name == "dapl" else {})
    if hasattr(strategy, "encode_text_features"):  # zero-shot CLIP writes its prompts on first use
        strategy.encode_text_features()
    text = " | ".join(seen)
    assert "_" not in text, text
    for expected in ("american bulldog", "Apply Eye Makeup", "The Eiffel Tower", "ring (jewellery)"):
        assert expected in text, (expected, text)
