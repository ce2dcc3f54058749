"""The named scenarios a suite can ask for: one registry entry per (builder, parameters)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bench.core.registry import Registry


@dataclass(frozen=True)
class ScenarioPreset:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""


SCENARIOS: Registry[ScenarioPreset] = Registry("scenario")


def _add(name: str, kind: str, description: str, **params: Any) -> None:
    SCENARIOS.add(name, ScenarioPreset(kind, params, description))


_add("ci5_glyphs", "class_incremental", "all glyph classes in 5 tasks, clean print, seeded class order",
     num_tasks=5)
_add("ci10_glyphs", "class_incremental", "all glyph classes in 10 tasks, clean print", num_tasks=10)
_add("ci5_glyphs_5shot", "class_incremental", "5 tasks, 5 training images per class", num_tasks=5, shots=5)
_add("di_styles", "domain_incremental", "all classes; style shifts clean -> outline -> texture -> noisy",
     domains=("clean", "outline", "texture", "noisy"))
_add("b2n_glyphs", "base_to_new", "tune on half the classes (16 shots), test on base and on new", shots=16)
_add("uda_digits", "domain_adaptation", "glyph digits (labelled) -> handwritten digits (unlabelled)",
     source="clean", target="handwritten")
_add("uda_styles", "domain_adaptation", "clean print (labelled) -> coloured texture (unlabelled)",
     source="clean", target="texture")


def build_scenario(name: str, seed: int, **overrides: Any):
    """Build a named scenario for one seed; `overrides` replace preset parameters (e.g. shots=4)."""
    preset = SCENARIOS.get(name)
    return _build_cached(name, seed, tuple(sorted({**preset.params, **overrides}.items())))


@lru_cache(maxsize=8)
def _build_cached(name: str, seed: int, params: tuple):
    from scenarios.streams import BUILDERS

    preset = SCENARIOS.get(name)
    scenario = BUILDERS[preset.kind](name, seed, **dict(params))
    scenario.spec = {"preset": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in params}}
    return scenario


def override_problems(name: str, overrides: dict[str, Any]) -> list[str]:
    """"key: message" for every scenario override the builder of `name` does not take (checked before anything is
    built, so a misspelt key fails up front instead of inside the first cell)."""
    import inspect

    from scenarios.streams import BUILDERS

    if not isinstance(overrides, dict):
        return [f"expected a mapping of parameter: value, got {type(overrides).__name__}"]
    builder = BUILDERS[SCENARIOS.get(name).kind]
    accepted = [p for p in inspect.signature(builder).parameters if p not in ("name", "seed")]
    problems = []
    for key in overrides:
        if key not in accepted:
            import difflib

            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{key}: not a parameter of {name!r}{hint}; valid: {', '.join(accepted)}")
    return problems
