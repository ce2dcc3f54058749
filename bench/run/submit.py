"""`run_bench.py submit FILE.json`: merge a result computed elsewhere into the leaderboards, as data only.

A submission is one cell's record (schema: `bench/schema/result.schema.json`). It is parsed with `json` (never
pickle, never imported or evaluated), validated against the schema, and its metrics are recomputed from its
accuracy matrix with `bench.eval.metrics.summarize`: a claimed metric that disagrees rejects the submission, and the
stored record carries the recomputed values only, so every number on a leaderboard comes from a matrix.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.core.resources import package_folder
from bench.core.store import ResultStore, config_hash
from bench.eval.metrics import summarize

SCHEMA_PATH = package_folder("bench", "schema") / "result.schema.json"
MAX_BYTES = 5 * 2**20  # one cell's record is a few kB; anything this large is not one
METRIC_TOLERANCE = 1e-6  # claimed metrics may differ by float rounding only


class SubmissionError(ValueError):
    """A submission was rejected; `problems` holds one "JSON path: message" line per wrong field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("submission rejected:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse(text: str) -> Any:
    """Strict JSON: NaN and Infinity are refused, so a matrix can never hide a non-number."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise SubmissionError([f"$: not valid JSON: {error}"]) from None


def schema_problems(record: Any) -> list[str]:
    """Every schema violation as "JSON path: message", in document order."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(record), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{error.json_path}: {error.message}" for error in errors]


def metric_problems(record: dict[str, Any]) -> tuple[list[str], dict[str, float]]:
    """Recompute the metrics from the matrix; name every claimed metric that is unknown or disagrees."""
    kind = "joint" if record["strategy"]["flags"]["joint_training"] else record["scenario"]["kind"]
    results = record["results"]
    try:
        computed = summarize(results["acc_matrix"], results["eval_names"], kind)
    except ValueError as error:
        return [f"$.results.acc_matrix: {error}"], {}
    problems = []
    if results["eval_names"] != record["scenario"]["eval_names"]:
        problems.append(f"$.results.eval_names: {results['eval_names']} differ from $.scenario.eval_names "
                        f"{record['scenario']['eval_names']}")
    if kind != "joint" and len(results["acc_matrix"]) != record["scenario"]["num_steps"]:
        problems.append(f"$.results.acc_matrix: {len(results['acc_matrix'])} rows for a scenario of "
                        f"{record['scenario']['num_steps']} training steps")
    for name, claimed in record.get("metrics", {}).items():
        if name not in computed:
            problems.append(f"$.metrics.{name}: not a metric this suite computes for {kind} "
                            f"(computed: {', '.join(computed)})")
        elif not math.isclose(claimed, computed[name], rel_tol=0.0, abs_tol=METRIC_TOLERANCE):
            problems.append(f"$.metrics.{name}: claimed {claimed!r}, but the accuracy matrix gives "
                            f"{computed[name]!r}")
    return problems, computed


def catalog_problems(record: dict[str, Any]) -> list[str]:
    """The scenario must be one of this suite's, of the same kind: otherwise the row would compare unlike."""
    from scenarios.catalog import SCENARIOS

    name, kind = record["scenario"]["name"], record["scenario"]["kind"]
    problems = []
    if record["config"]["scenario"] != name:
        problems.append(f"$.config.scenario: {record['config']['scenario']!r} differs from $.scenario.name {name!r}")
    if name not in SCENARIOS:
        problems.append(f"$.scenario.name: {SCENARIOS.unknown_message(name)}")
    elif SCENARIOS.get(name).kind != kind:
        problems.append(f"$.scenario.kind: {name!r} is a {SCENARIOS.get(name).kind} scenario, not {kind}")
    return problems


def validate(record: Any) -> dict[str, Any]:
    """The record as it will be stored (recomputed metrics, derived share, submitted id), or SubmissionError."""
    problems = schema_problems(record)
    if problems:
        raise SubmissionError(problems)
    problems = catalog_problems(record)
    more, computed = metric_problems(record)
    problems += more
    if problems:
        raise SubmissionError(problems)
    stored = dict(record)
    stored["metrics"] = computed
    strategy = dict(stored["strategy"])
    strategy.setdefault("label", strategy["name"])
    strategy["trainable_share"] = strategy["trainable_params"] / strategy["backbone_params"]
    stored["strategy"] = strategy
    stored["submitted"] = True
    stored["error"] = None
    # Its own id space: a submission never overwrites (or is mistaken for) a cell this suite ran.
    stored["cell_id"] = "submitted-" + config_hash(stored["config"])
    return stored


def submit(path: Path, results_dir: Path) -> dict[str, Any]:
    """Validate the file at `path` and write it into the result store; returns the stored record."""
    if not path.is_file():
        raise SubmissionError([f"$: {path} does not exist"])
    if path.stat().st_size > MAX_BYTES:
        raise SubmissionError([f"$: {path} is larger than {MAX_BYTES // 2**20} MiB; submit one cell's record"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SubmissionError([f"$: {path} is not UTF-8 text: {error}"]) from None
    stored = validate(parse(text))
    ResultStore(results_dir).write(stored)
    return stored


def submit_file(path: Path, results_dir: Path, leaderboards_dir: Path) -> int:
    """CLI: submit, rebuild the leaderboards, print what happened. Exit 0 on success, 1 when rejected."""
    from bench.report.leaderboard import build_leaderboards

    try:
        stored = submit(path, results_dir)
    except SubmissionError as error:
        print(f"{path}: {error}")
        return 1
    written = build_leaderboards(results_dir, leaderboards_dir)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in stored["metrics"].items())
    print(f"accepted {path} as {stored['cell_id']} ({stored['scenario']['name']} / {stored['strategy']['label']}, "
          f"marked submitted): {metrics}")
    print(f"leaderboards rebuilt: {len(written)} files under {leaderboards_dir}")
    return 0
