"""bench.core.safe_yaml: SafeLoader with bounded aliases, no duplicate keys, a BOM accepted (issue 22)."""
from __future__ import annotations

import time

import pytest
import yaml

from bench.core.safe_yaml import MAX_ALIASES, load_yaml


def test_plain_documents_load_as_with_safe_load():
    text = "a: 1\nb: [x, {c: 2.5}]\nbase: &b {x: 1}\nmerged: {<<: *b, y: 2}\n"
    assert load_yaml(text) == yaml.safe_load(text)


def test_a_byte_order_mark_is_accepted():
    assert load_yaml("\ufeffseeds: [0, 1]\n") == {"seeds": [0, 1]}


def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(yaml.YAMLError, match=r"(?s)first 'seeds' on line 1.*duplicate key 'seeds'.*line 3"):
        load_yaml("seeds: [0]\nname: x\nseeds: [1]\n")


def test_an_overridden_merge_key_is_not_a_duplicate():
    assert load_yaml("b: &b {x: 1, y: 1}\nc: {<<: *b, x: 2}\n")["c"] == {"x": 2, "y": 1}


def test_a_billion_laughs_is_refused_at_once():
    bomb = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "lol"] * 9) + "]\n" for i in range(10))
    started = time.monotonic()
    with pytest.raises(yaml.YAMLError, match=f"more than {MAX_ALIASES} aliases"):
        load_yaml(bomb)
    assert time.monotonic() - started < 1


def test_few_aliases_that_expand_hugely_are_refused():
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{n}: &{n} [" + ", ".join([f"*{p}"] * 6) + "]\n" for p, n in zip("abcd", "bcde"))
    with pytest.raises(yaml.YAMLError, match="expands to more than"):
        load_yaml(bomb)


def test_a_domains_list_from_yaml_builds_the_scenario():
    from scenarios.catalog import build_scenario

    scenario = build_scenario("di_styles", 0, **load_yaml("{domains: [clean, outline], num_classes: 4, "
                                                          "train_per_font: 1, test_per_font: 1}"))
    assert [s.name for s in scenario.eval_sets] == ["clean", "outline"]


def test_row_identity_ignores_the_label():
    from bench.report.intake import row_identity

    probe = {"config": {"strategy": "linear_probe", "backbone": "b", "seed": 0, "label": "l2p"}}
    l2p = {"config": {"strategy": "l2p", "backbone": "b", "seed": 0, "label": "l2p"}}
    assert row_identity(probe)[0] == "linear_probe" and row_identity(probe) != row_identity(l2p)
    assert row_identity(probe) == row_identity({"config": {**probe["config"], "label": None, "seed": 3}})
