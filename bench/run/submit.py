"""`run_bench.py submit FILE.json`: merge a result computed elsewhere into the leaderboards, as data only.

A submission is one cell's record (`bench.run.record.Record`; JSON Schema in `bench/schema/result.schema.json`).
It is parsed with `json` (never pickle, never imported or evaluated) and validated. Then every number it claims
that this suite can recompute is recomputed, and a claim that disagrees rejects the submission:
- metrics, from its accuracy matrix (`bench.eval.metrics.summarize`);
- the config, normalised as the runner would (`CellConfig.resolved()`): same protocol version, valid fields;
- the scenario's facts (steps, evaluation sets and their sizes), by building the scenario of that config;
- the strategy's facts (family, paper, comparability flags, trainable parameters, parameters per new task) and
  the backbone's size, by building the registered strategy on the registered backbone (nothing is trained);
- robustness: the top-level numbers from the per-evaluation-set ones, attacked accuracy never above clean nor
  rising with the budget, and each set's clean accuracy (a seeded subset of that set) consistent with the
  matrix's final row (a binomial test: a 1.0 claimed where the matrix says 0.125 is refused).
The checks that need no model (schema, metrics, names: from the cached listing, `bench.run.catalog`) come first
and load no torch; only a record that passes them imports torch, to build its cell.
The stored record carries the recomputed values, is marked `submitted` (shown with † on every table) and has its
own id space; the same config submitted again is refused unless `replace`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.core.store import DuplicateKeyError, ResultStore, config_hash, unique_keys
from bench.eval.metrics import summarize
from bench.report.intake import label_problem
from bench.run.record import record_problems

MAX_BYTES = 5 * 2**20  # one cell's record is a few kB; anything this large is not one
MAX_DEPTH = 32  # a record nests 5 levels deep; deeper is not a record (and must not reach a recursive parser)
METRIC_TOLERANCE = 1e-6  # claimed metrics may differ by float rounding only
CLEAN_P_VALUE = 1e-4  # a real subset's clean accuracy fails this test once in 10,000 submissions


class SubmissionError(ValueError):
    """A submission was rejected; `problems` holds one "JSON path: message" line per wrong field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("submission rejected:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows (write null)")


def _depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, counted without parsing (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse(text: str) -> Any:
    """Strict JSON: NaN and Infinity are refused (null stands for a missing number); deep nesting is refused
    before parsing, so no input can exhaust the parser's recursion."""
    if _depth(text) > MAX_DEPTH:
        raise SubmissionError([f"$: nested more than {MAX_DEPTH} levels deep; a result record is not"])
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=unique_keys)
    except DuplicateKeyError as error:
        raise SubmissionError([f"$: {error}; a record names each field once"]) from None
    except (ValueError, RecursionError) as error:
        raise SubmissionError([f"$: not valid JSON: {error}"]) from None


def schema_problems(record: Any) -> list[str]:
    """Every type or range problem as "JSON path: message" (see `bench.run.record.Record`)."""
    return record_problems(record)


def metric_problems(record: dict[str, Any]) -> tuple[list[str], dict[str, float]]:
    """Recompute the metrics from the matrix; name every claimed metric that is unknown or disagrees."""
    kind = "joint" if record["strategy"]["flags"]["joint_training"] else record["scenario"]["kind"]
    results = record["results"]
    matrix = results["acc_matrix"]  # null = not evaluated: the metrics skip it (bench.eval.metrics)
    try:
        computed = summarize(matrix, results["eval_names"], kind)
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
        elif not _same(claimed, computed[name]):
            problems.append(f"$.metrics.{name}: claimed {claimed!r}, but the accuracy matrix gives "
                            f"{computed[name]!r}")
    return problems, computed


def _same(claimed: float | None, computed: float | None) -> bool:
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (claimed, computed)]
    if any(missing):
        return all(missing)
    return math.isclose(claimed, computed, rel_tol=0.0, abs_tol=METRIC_TOLERANCE)


def catalog_problems(record: dict[str, Any]) -> list[str]:
    """The scenario, strategy and backbone must be this suite's registered ones, of the same kind: otherwise
    the row would compare unlike, and nothing could be recomputed."""
    from bench.run.catalog import registered_names
    from scenarios.catalog import SCENARIOS

    # The built-in and installed (entry-point) strategies: a submission never loads code of its own. Read from the
    # cached listing, so a record refused here or by its metrics never waits for torch.
    STRATEGIES, BACKBONES = registered_names()  # noqa: N806

    name, kind = record["scenario"]["name"], record["scenario"]["kind"]
    config = record["config"]
    problems = []
    if config["scenario"] != name:
        problems.append(f"$.config.scenario: {config['scenario']!r} differs from $.scenario.name {name!r}")
    if name not in SCENARIOS:
        problems.append(f"$.scenario.name: {SCENARIOS.unknown_message(name)}")
    elif SCENARIOS.get(name).kind != kind:
        problems.append(f"$.scenario.kind: {name!r} is a {SCENARIOS.get(name).kind} scenario, not {kind}")
    if config["strategy"] != record["strategy"]["name"]:
        problems.append(f"$.strategy.name: {record['strategy']['name']!r} differs from $.config.strategy "
                        f"{config['strategy']!r}")
    if config["strategy"] not in STRATEGIES:
        problems.append(f"$.config.strategy: {STRATEGIES.unknown_message(config['strategy'])} (a submission can "
                        f"only name a registered strategy: its flags and size are checked against it)")
    if config["backbone"] not in BACKBONES:
        problems.append(f"$.config.backbone: {BACKBONES.unknown_message(config['backbone'])}")
    if config.get("weights") is not None:
        problems.append("$.config.weights: a submission must use the backbone's registered weights (null)")
    label = record["strategy"].get("label") or config.get("label")
    for where, text in (("$.strategy.label", record["strategy"].get("label")), ("$.config.label", config.get("label"))):
        if isinstance(text, str) and label_problem(text):
            problems.append(f"{where}: {label_problem(text)}")
            label = None
    if label and label != config["strategy"] and label in STRATEGIES:  # rows are named by label on the tables
        problems.append(f"$.strategy.label: {label!r} is the name of another registered strategy; a "
                        f"{config['strategy']!r} row must not be taken for it")
    return problems


def override_bound_problems(scenario: str, overrides: dict[str, Any]) -> list[str]:
    """A submission's scenario overrides may only shrink the registered scenario: `submit` builds the scenario to
    check the record's facts, and must not build one larger than what the catalog registers (a `train_per_font:
    20000` would run for minutes on the maintainer's machine). Numbers above the registered value are refused,
    and so are booleans where the registered value is a number."""
    import inspect

    from scenarios.catalog import SCENARIOS
    from scenarios.streams import BUILDERS

    if scenario not in SCENARIOS or not isinstance(overrides, dict):
        return []
    preset = SCENARIOS.get(scenario)
    builder = BUILDERS.get(preset.kind)
    defaults = {name: p.default for name, p in inspect.signature(builder).parameters.items()} if builder else {}
    registered = {**defaults, **preset.params}
    problems = []
    for key, value in overrides.items():
        base = registered.get(key)
        if isinstance(base, bool) or not isinstance(base, (int, float)):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{key}: {value!r} where the registered scenario has the number {base!r}")
        elif value > base:
            problems.append(f"{key}: {value!r} is more than the registered scenario's {base!r}; a submission may "
                            f"only evaluate on a scenario as large as the registered one, or smaller")
    return problems


def _on_disk(scenario: str) -> bool:
    """Whether a preset reads an on-disk source: its data identity is the submitter's (bench/run/data_identity)."""
    from scenarios.catalog import SCENARIOS

    return scenario in SCENARIOS and bool(SCENARIOS.get(scenario).source)


def recomputed_facts(record: dict[str, Any]) -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Build (never train) the cell the record's config names; compare every fact the record claims about its
    config, scenario, strategy and backbone. Returns problems and the normalised config, scenario and strategy."""
    import strategies  # noqa: F401  (only now: a record refused by the cheap checks never waits for torch)
    from bench.contract.plugins import load_entry_points
    from bench.core.strategy import count_trainable
    from bench.run.runner import PROTOCOL_VERSION, CellConfig, prepare
    from scenarios.catalog import override_problems

    load_entry_points()  # installed packages' strategies count as registered (the maintainer installed them)

    config = record["config"]
    problems: list[str] = []
    if config["protocol_version"] != PROTOCOL_VERSION:
        problems.append(f"$.config.protocol_version: {config['protocol_version']} is not this suite's protocol "
                        f"{PROTOCOL_VERSION}: the numbers were computed differently")
    problems += [f"$.config.scenario_overrides.{p}" for p in override_problems(config["scenario"],
                                                                             config.get("scenario_overrides", {}))]
    problems += [f"$.config.scenario_overrides.{p}" for p in
                 override_bound_problems(config["scenario"], config.get("scenario_overrides") or {})]
    if problems:
        return problems, {}, {}, {}
    cell = CellConfig(scenario=config["scenario"], strategy=config["strategy"], backbone=config["backbone"],
                      seed=config["seed"], strategy_config=dict(config["strategy_config"]),
                      scenario_overrides=dict(config.get("scenario_overrides") or {}),
                      robustness=config.get("robustness"), label=config.get("label"),
                      data=config.get("data") if _on_disk(config["scenario"]) else None)
    try:
        resolved = json.loads(json.dumps(cell.resolved()))  # as a file holds it: tuples are lists
        scenario, backbone_params, strategy = prepare(cell)
    except (ValueError, KeyError, TypeError) as error:
        return [f"$.config: {error}"], {}, {}, {}
    claimed = {k: v for k, v in config.items() if k in resolved}
    for key in sorted(set(resolved) - {"label"} - ({"data"} if "data" not in config else set())):
        if claimed.get(key) != resolved[key]:
            problems.append(f"$.config.{key}: claimed {claimed.get(key)!r}, but the runner resolves it to "
                            f"{resolved[key]!r}")
    facts = scenario.describe()
    for key in ("num_steps", "eval_names", "eval_sizes"):
        if key in record["scenario"] and record["scenario"][key] != facts[key]:
            problems.append(f"$.scenario.{key}: claimed {record['scenario'][key]!r}, but the scenario of this "
                            f"config has {facts[key]!r}")
    import dataclasses

    from bench.models.backbones import BACKBONES

    steps = scenario.steps
    new_classes = len(steps[-1].classes) if scenario.kind == "class_incremental" else 0
    truth = {"family": strategy.family, "paper": strategy.paper, "flags": dataclasses.asdict(strategy.flags),
             "backbone_family": BACKBONES.get(cell.backbone).family, "backbone_params": backbone_params,
             "trainable_params": count_trainable(strategy),
             "params_per_new_task": strategy.params_per_new_task(new_classes)}
    for key, value in truth.items():
        if key in record["strategy"] and record["strategy"][key] != value:
            problems.append(f"$.strategy.{key}: claimed {record['strategy'][key]!r}, but the registered "
                            f"{cell.strategy!r} on {cell.backbone!r} has {value!r}")
    truth["trainable_share"] = truth["trainable_params"] / backbone_params
    return problems, resolved, {**record["scenario"], **facts}, truth


def robustness_problems(record: dict[str, Any]) -> list[str]:
    """Check a claimed robustness entry against itself and the accuracy matrix (see the module docstring)."""
    rob = record.get("robustness")
    if rob is None:
        return []
    from bench.eval.robustness import combine

    per_set = rob.get("per_eval_set")
    if not per_set:
        return ["$.robustness.per_eval_set: missing; the top-level robustness numbers are recomputed from it"]
    names = record["results"]["eval_names"]
    final = dict(zip(names, record["results"]["acc_matrix"][-1]))
    sizes = dict(zip(names, record["scenario"].get("eval_sizes") or [None] * len(names)))
    problems = []
    for name, numbers in per_set.items():
        where = f"$.robustness.per_eval_set.{name}"
        if name not in final:
            problems.append(f"{where}: not an evaluation set of this scenario ({', '.join(names)})")
            continue
        problems += _set_problems(where, numbers, final[name], sizes[name])
    if problems:
        return problems
    try:
        again = combine(per_set)
    except (KeyError, TypeError, ZeroDivisionError) as error:
        return [f"$.robustness.per_eval_set: incomplete ({type(error).__name__}: {error})"]
    for key in ("clean", "subset_size"):
        if not _same(rob.get(key), again.get(key)):
            problems.append(f"$.robustness.{key}: claimed {rob.get(key)!r}, but the evaluation sets give "
                            f"{again.get(key)!r}")
    for attack in ("fgsm", "pgd"):
        for budget, value in (again.get(attack) or {}).items():
            if not _same((rob.get(attack) or {}).get(budget), value):
                problems.append(f"$.robustness.{attack}.{budget}: claimed {(rob.get(attack) or {}).get(budget)!r}, "
                                f"but the evaluation sets give {value!r}")
    for key, sub in (("autoattack", "acc"), ("corruptions", "mean")):
        if key in again and not _same((rob.get(key) or {}).get(sub), again[key][sub]):
            problems.append(f"$.robustness.{key}.{sub}: claimed {(rob.get(key) or {}).get(sub)!r}, but the "
                            f"evaluation sets give {again[key][sub]!r}")
    return problems


def _set_problems(where: str, numbers: Any, final_acc: float | None, set_size: int | None) -> list[str]:
    from scipy.stats import binomtest

    if not isinstance(numbers, dict) or not isinstance(numbers.get("subset_size"), int) or \
            not isinstance(numbers.get("clean"), (int, float)):
        return [f"{where}: needs an integer subset_size and a numeric clean accuracy"]
    n, clean = numbers["subset_size"], numbers["clean"]
    problems = []
    if set_size is not None and n > set_size:
        problems.append(f"{where}.subset_size: {n} images from a set of {set_size}")
    correct = round(clean * n)
    if not 0 <= clean <= 1 or abs(correct - clean * n) > 1e-6:
        problems.append(f"{where}.clean: {clean!r} is not a whole number of {n} images")
    elif final_acc is not None and n and binomtest(correct, n, min(max(final_acc, 1e-9), 1 - 1e-9)).pvalue < \
            CLEAN_P_VALUE:
        problems.append(f"{where}.clean: {clean!r} on {n} images of a set the final model gets {final_acc!r} "
                        f"right on (accuracy matrix): p < {CLEAN_P_VALUE:g}, not a subset of the same model's "
                        f"predictions")
    for attack in ("fgsm", "pgd"):
        previous = clean
        budgets = numbers.get(attack) or {}
        from bench.eval.robustness import parse_budget

        for budget in sorted(budgets, key=parse_budget):
            acc = budgets[budget]
            if isinstance(acc, (int, float)) and acc > previous + 1e-9:
                problems.append(f"{where}.{attack}.{budget}: {acc!r} is above the accuracy at the smaller budget "
                                f"or clean ({previous!r}); an image robust at a budget is robust below it")
            previous = acc if isinstance(acc, (int, float)) else previous
    return problems


def validate(record: Any) -> dict[str, Any]:
    """The record as it will be stored (recomputed metrics and facts, submitted id), or SubmissionError."""
    problems = schema_problems(record)
    if problems:
        raise SubmissionError(problems)
    problems = catalog_problems(record)
    more, computed = metric_problems(record)
    problems += more
    if problems:
        raise SubmissionError(problems)
    problems, config, scenario, facts = recomputed_facts(record)
    if not problems:
        record = {**record, "scenario": scenario}
        problems = robustness_problems(record)
    if problems:
        raise SubmissionError(problems)
    stored = dict(record)
    stored["config"] = {**config, **({"label": record["config"]["label"]} if "label" in record["config"] else {})}
    stored["metrics"] = computed
    strategy = {**stored["strategy"], **facts}
    strategy.setdefault("label", strategy["name"])
    stored["strategy"] = strategy
    stored["submitted"] = True
    stored["error"] = None
    # Its own id space: a submission never overwrites (or is mistaken for) a cell this suite ran.
    stored["cell_id"] = "submitted-" + config_hash({**stored["config"], "label": strategy["label"]})
    return stored


def submit(path: Path, results_dir: Path, replace: bool = False) -> dict[str, Any]:
    """Validate the file at `path` and write it into the result store; returns the stored record."""
    stored = checked_submission(path, results_dir, replace)
    ResultStore(results_dir).write(stored)
    return stored


def checked_submission(path: Path, results_dir: Path, replace: bool = False) -> dict[str, Any]:
    """The record `submit` would store, validated, nothing written (SubmissionError when refused)."""
    if not path.is_file():
        raise SubmissionError([f"$: {path} does not exist or is not a file"])
    if path.stat().st_size > MAX_BYTES:
        raise SubmissionError([f"$: {path} is larger than {MAX_BYTES // 2**20} MiB; submit one cell's record"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SubmissionError([f"$: {path} is not UTF-8 text: {error}"]) from None
    stored = validate(parse(text))
    store = ResultStore(results_dir)
    earlier = store.read(stored["cell_id"])
    if earlier is not None and not replace:
        raise SubmissionError([f"$.config: the same config ({stored['scenario']['name']} / "
                               f"{stored['strategy']['label']}, seed {stored['config']['seed']}) was submitted "
                               f"before as {stored['cell_id']}; pass --replace to replace it"])
    return stored


def submit_file(path: Path, results_dir: Path, leaderboards_dir: Path, replace: bool = False,
                force: bool = False) -> int:
    """CLI: submit, rebuild the leaderboards, print what happened. Exit 0 on success, 1 when rejected (nothing
    written), 2 when the results or leaderboards folder cannot take it."""
    from bench.core.paths import check_output_dir
    from bench.report.leaderboard import build_leaderboards

    check_output_dir(results_dir, "--results")
    check_output_dir(leaderboards_dir, "--leaderboards")
    store = ResultStore(results_dir)
    try:
        stored = checked_submission(path, results_dir, replace)
    except SubmissionError as error:
        print(f"{path}: {error}")
        return 1
    # A transaction: write, rebuild, and only then keep. A refused or failed rebuild (or Ctrl-C) puts back the
    # earlier record, replaced or not, byte for byte, and the tables as they were.
    target = store.path_for(stored["cell_id"])
    earlier = target.read_bytes() if target.is_file() else None
    tables = _snapshot(leaderboards_dir)
    try:
        store.write(stored)
        written = build_leaderboards(results_dir, leaderboards_dir, force=force)
    except BaseException:
        if earlier is None:
            target.unlink(missing_ok=True)
        else:
            _put_back(target, earlier)
        _restore(leaderboards_dir, tables)
        raise
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in stored["metrics"].items() if isinstance(v, (int, float)))
    print(f"accepted {path} as {stored['cell_id']} ({stored['scenario']['name']} / {stored['strategy']['label']}, "
          f"marked submitted): {metrics}")
    print(f"leaderboards rebuilt: {len(written)} files under {leaderboards_dir}")
    return 0


def _snapshot(folder: Path) -> dict[Path, bytes]:
    """Every file under `folder` (the leaderboards: a few hundred kB)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} if folder.is_dir() else {}


def _put_back(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.restore")
    tmp.write_bytes(data)
    tmp.replace(path)


def _restore(folder: Path, files: dict[Path, bytes]) -> None:
    """`folder` as `_snapshot` saw it: changed files put back, new files removed."""
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and path not in files:
            path.unlink()
    for path, data in files.items():
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            _put_back(path, data)

