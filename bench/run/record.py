"""The result record of one cell as pydantic models: what `submit` validates, and the source of the JSON Schema.

`bench/schema/result.schema.json` is generated from `Record` (`python -m bench.run.record` rewrites it; a test
checks that the committed file is current), so the project has one validation system: pydantic.
Strict types (a flag is a boolean, a seed an integer: no "no" or "zero"), accuracies are fractions in [0, 1] or
null (not evaluated; result files are strict JSON, so NaN is stored as null).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.core.resources import package_folder

SCHEMA_PATH = package_folder("bench", "schema") / "result.schema.json"
Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1)]


class _Part(BaseModel):
    # Strict: "no" is not a boolean and "zero" not an integer. Extra keys allowed: the runner may record more facts.
    model_config = ConfigDict(strict=True, extra="allow")


class RecordConfig(_Part):
    """Everything that determines the numbers (bench.run.runner.CellConfig.resolved())."""

    scenario: Name
    strategy: Name
    backbone: Name
    seed: int
    strategy_config: dict[str, Any]
    scenario_overrides: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    robustness: dict[str, Any] | None = None
    protocol_version: Annotated[int, Field(ge=1)]
    label: Name | None = None
    data: dict[str, Any] | None = Field(
        default=None, description="the data the cell read (scenarios/identity.py): source, root, fingerprint of the "
                                  "listing (relative paths, sizes, labels, names), record count and bytes; "
                                  "embedded data: its generator version")


class RecordSource(_Part):
    """Where a real-data scenario was read from: the source, its root, how the split was made, the class count."""

    name: Name
    root: str | None = None
    split: str | None = None
    num_classes: Annotated[int, Field(ge=1)] | None = None


class RecordScenario(_Part):
    name: Name
    kind: Literal["class_incremental", "domain_incremental", "base_to_new", "domain_adaptation"]
    seed: int | None = None
    num_steps: Annotated[int, Field(ge=1)]
    eval_names: Annotated[list[str], Field(min_length=1)]
    source: RecordSource | None = Field(
        default=None, description="on-disk data source of a real-data preset (absent for the embedded glyphs)")


class RecordFlags(BaseModel):
    """Comparability flags (bench.core.strategy.Flags): every one must be stated."""

    model_config = ConfigDict(strict=True, extra="forbid")
    task_id_at_test: bool
    batchwise_inference: bool
    extra_forward_passes: Count
    replay_memory: bool
    unlabelled_target: bool
    class_names: bool
    joint_training: bool


class RecordStrategy(_Part):
    name: Name
    label: Name | None = None
    family: Name
    paper: Name
    flags: RecordFlags
    backbone_family: Literal["vit", "clip", "coca"] | None = None
    trainable_params: Count
    backbone_params: Annotated[int, Field(ge=1)]
    trainable_share: Annotated[float, Field(ge=0)] | None = None
    params_per_new_task: Count | None = None


class RecordResults(_Part):
    acc_matrix: Annotated[list[Annotated[list[Fraction | None], Field(min_length=1)]], Field(min_length=1)] = Field(
        description="A[i][j]: accuracy on eval set j after training step i; null: not evaluated")
    eval_names: Annotated[list[str], Field(min_length=1)]
    final_losses: list[float | None] = Field(default_factory=list)
    initial_accuracy: list[Fraction | None] | None = None


class RecordTiming(_Part):
    train_seconds: Annotated[float, Field(ge=0)] | None = None
    eval_seconds: Annotated[float, Field(ge=0)] | None = None
    robustness_seconds: Annotated[float, Field(ge=0)] | None = None
    total_seconds: Annotated[float, Field(ge=0)] | None = None


class RecordMemory(_Part):
    peak_mb: Annotated[float, Field(ge=0)] | None = None
    measure: str | None = None


class RecordEnv(_Part):
    code_version: Name = Field(description="git hash of the code that ran (-dirty when changed), or "
                                           "promptshift-VERSION for an installed wheel")
    packages: dict[str, str]
    device: str | None = None
    weights: dict[str, str | None] | None = Field(
        default=None, description="the backbone's full tag, where its weights came from, the file and its sha256")


class RecordAutoAttack(_Part):
    eps: str
    acc: Fraction | None


class RecordCorruptions(_Part):
    mean: Fraction | None
    per_corruption: dict[str, Fraction | None] = Field(default_factory=dict)


class RecordRobustness(_Part):
    clean: Fraction | None = None
    subset_size: Count | None = None
    fgsm: dict[str, Fraction | None] = Field(default_factory=dict)
    pgd: dict[str, Fraction | None] = Field(default_factory=dict)
    autoattack: RecordAutoAttack | None = None
    corruptions: RecordCorruptions | None = None
    per_eval_set: dict[str, dict[str, Any]] | None = None
    settings: dict[str, Any] | None = None


class RecordSubmitter(_Part):
    """Who ran it, and where the code is (free text)."""

    name: str | None = None
    contact: str | None = None
    code_url: str | None = None


class Record(BaseModel):
    """One cell's record as bench/run/runner.py writes it. A submission is data only: it is validated against this
    model, its numbers are recomputed (`bench.run.submit`), and nothing in it is executed."""

    model_config = ConfigDict(strict=True, extra="forbid", title="PromptShift result record (one cell)")
    schema_version: Literal[1]
    cell_id: str | None = Field(None, description="ignored on submission: the suite assigns the id")
    status: Literal["ok"] = Field(description="only finished cells can be submitted")
    error: None = None
    submitted: bool | None = None
    config: RecordConfig
    scenario: RecordScenario
    strategy: RecordStrategy
    results: RecordResults
    metrics: dict[str, float | None] = Field(default_factory=dict, description="claimed metrics; each must equal "
                                             "bench.eval.metrics.summarize of the matrix")
    timing: RecordTiming | None = None
    memory: RecordMemory | None = None
    env: RecordEnv
    robustness: RecordRobustness | None = None
    computed_as: str | None = Field(None, description="the cell whose computation this is (bench/run/twins.py): "
                                    "same numbers and timing, written from its record")
    submitter: RecordSubmitter | None = None


def _path(loc: tuple) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def record_problems(record: Any) -> list[str]:
    """Every problem of `record` against `Record` as "JSON path: message", in document order."""
    try:
        Record.model_validate(record)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "list["))))
            got = "" if e["type"] == "missing" else f" (got {e['input']!r:.60})"
            problems.append(f"{_path(loc)}: {e['msg']}{got}")
        return problems
    return []


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `Record` (what `bench/schema/result.schema.json` holds)."""
    schema = Record.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://promptshift.invalid/schema/result.schema.json",
            "$comment": "generated from bench/run/record.py by `python -m bench.run.record`; do not edit",
            **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
