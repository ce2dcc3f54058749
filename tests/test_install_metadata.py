"""What `pip install promptshift` asks for (pyproject.toml): compatible ranges that admit versions other than the
tested ones, the tested versions (constraints.txt) inside them, and the optional pieces as extras."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


CORE = _requirements(PROJECT["dependencies"])
EXTRAS = {name: _requirements(lines) for name, lines in PROJECT["optional-dependencies"].items()}


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_ranges_admit_other_versions_than_the_tested_ones():
    admitted = {"torch": ["2.3.0", "2.14.1", "2.20.0"], "torchvision": ["0.18.0", "0.29.1"],
                "avalanche-lib": ["0.5.0", "0.6.0", "0.6.1"]}
    for name, versions in admitted.items():
        for version in versions:
            assert CORE[name].specifier.contains(version), f"{name} {version} refused by {CORE[name]}"
    assert not CORE["torch"].specifier.contains("3.0.0")  # a new major may break the API: not promised


def test_no_requirement_is_an_exact_pin():
    for name, requirement in {**CORE, **{k: r for extra in EXTRAS.values() for k, r in extra.items()}}.items():
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), name


def test_the_tested_versions_satisfy_the_declared_ranges():
    pins = _pinned()
    for name, requirement in {**CORE, **EXTRAS["cluster"], **EXTRAS["test"]}.items():
        assert name in pins, f"{name} has no tested version in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {requirement}"


def test_heavy_and_optional_pieces_are_extras_not_core():
    for name in ("ray", "submitit", "pyautoattack", "selenium"):
        assert name not in CORE
    assert {"ray", "submitit"} <= set(EXTRAS["cluster"])
    assert "pyautoattack" in EXTRAS["autoattack"] and "selenium" in EXTRAS["browser"]


def test_a_suite_asking_for_autoattack_without_the_extra_fails_with_the_install_line(monkeypatch):
    import importlib.util

    from bench.eval.robustness import missing_autoattack
    from bench.run.runner import CellConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyautoattack" else real(name, *a))
    cell = CellConfig("ci5_glyphs", "linear_probe", "vit_test_micro", 0, robustness={"autoattack": True})
    assert "pip install 'promptshift[autoattack]'" in missing_autoattack([cell])
    assert missing_autoattack([CellConfig("ci5_glyphs", "linear_probe", "vit_test_micro", 0,
                                          robustness={"autoattack": False})]) is None
    assert missing_autoattack([CellConfig("ci5_glyphs", "linear_probe", "vit_test_micro", 0)]) is None
