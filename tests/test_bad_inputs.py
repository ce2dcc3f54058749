"""The bad-input table (issue 13): what a hostile but realistic user types, and what must happen.

Every row runs one command line through `bench.cli.main` against a copy of a real results folder (one finished
micro cell) and of the leaderboards built from it, and asserts: the exit code, a message naming the problem, and
that every stored result and every table is byte-identical afterwards (rows that train, the run-time guards, may
add their own "failed" record, never touch anything that was there). Most rows fail before any data is built.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from bench import cli
from bench.core.store import ResultStore
from bench.core.strategy import STRATEGIES

TINY = """\
name: tiny
version: 1
seeds: [0]
backbones: {vit: vit_test_micro, clip: clip_test_micro, coca: coca_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 6, train_per_font: 1, test_per_font: 1}}
strategies:
"""
PROBE = "  - {name: linear_probe, config: {epochs: 1}}\n"


def suite(*entries: str, head: str = TINY) -> str:
    return head + "".join(entries or (PROBE,))


PLUGIN = '''
from dataclasses import dataclass

import torch
from torch import nn

from bench.core.strategy import Strategy, StrategyConfig, hp, register_strategy


@register_strategy("{name}")
class Bad(Strategy):
    """A broken probe (Nobody, 2024). Trains: a head. Freezes: the backbone."""

    paper = "Nobody, 2024"
    supported_scenarios = ("class_incremental",)
    backbone_families = ("vit",)

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def forward(self, x, cached=None):
        return {output}

    def after_task(self, ctx):
        {after_task}
'''


CONFIGURED_PLUGIN = '''
from dataclasses import dataclass

from torch import nn

from bench.core.strategy import Strategy, StrategyConfig, register_strategy


@dataclass(frozen=True)
class Config(StrategyConfig):
    {field} = {default}


@register_strategy("{name}", Config)
class Probe(Strategy):
    """A probe with an odd config (Nobody, 2024). Trains: a head. Freezes: the backbone."""

    paper = "Nobody, 2024"
    supported_scenarios = ("class_incremental",)
    backbone_families = ("vit",)

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def forward(self, x, cached=None):
        return self.head(self.backbone(x))
'''


@dataclass
class Case:
    """One row: `argv` may hold {suite}, {results}, {boards}, {tmp}, {record}; `files` are written into tmp."""

    id: str
    argv: list[str]
    code: int
    message: str
    suite: str | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)
    record_edit: Callable[[dict], object] | None = None  # writes {record}: the stored record, edited
    trains: bool = False
    setup: Callable[[Path, Path, Path], None] | None = None  # (tmp, results, boards) before the state is hashed
    adds_ok: Callable[[dict], bool] | None = None  # a good input that runs: its one new record is ok and passes this


def _set(path: str, value):
    def edit(record):
        *parents, last = path.split(".")
        target = record
        for key in parents:
            target = target[key]
        target[last] = value
    return edit


RUN = ["run", "--suite", "{suite}", "--results", "{results}", "--leaderboards", "{boards}", "--no-progress"]
SUBMIT = ["submit", "{record}", "--results", "{results}", "--leaderboards", "{boards}"]
CASES = [
    # ------------------------------------------------------------------ strategy configs in a suite
    Case("epochs negative", RUN, 2, r"tiny\.yaml: strategies\[0\] \(linear_probe\): config: .*epochs: -1 must be >= 0",
         suite(" - {name: linear_probe, config: {epochs: -1}}\n")),
    Case("lr huge", RUN, 2, r"strategies\[0\].*lr: 1e\+30 must be <= 10", suite(" - {name: linear_probe, config: {lr: 1e30}}\n")),
    Case("lr nan", RUN, 2, r"lr: nan must be a finite number", suite(" - {name: linear_probe, config: {lr: .nan}}\n")),
    Case("lr zero", RUN, 2, r"lr: 0.0 must be > 0", suite(" - {name: linear_probe, config: {lr: 0}}\n")),
    Case("epochs fractional", RUN, 2, r"epochs: .*fractional part \(got 2\.5\)",
         suite(" - {name: linear_probe, config: {epochs: 2.5}}\n")),
    Case("epochs a word", RUN, 2, r"epochs: Input should be a valid integer.*'two'",
         suite(" - {name: linear_probe, config: {epochs: two}}\n")),
    Case("epochs boolean", RUN, 2, r"epochs: True is a boolean", suite(" - {name: linear_probe, config: {epochs: true}}\n")),
    Case("batch size zero", RUN, 2, r"batch_size: 0 must be >= 1",
         suite(" - {name: linear_probe, config: {batch_size: 0}}\n")),
    Case("optimizer misspelt", RUN, 2, r"optimizer: 'sgdd' must be one of 'sgd', 'adam', 'adamw'",
         suite(" - {name: linear_probe, config: {optimizer: sgdd}}\n")),
    Case("momentum one", RUN, 2, r"momentum: 1.0 must be < 1", suite(" - {name: linear_probe, config: {momentum: 1}}\n")),
    Case("augment unknown", RUN, 2, r"augment: 'flip' must be one of", suite(" - {name: linear_probe, config: {augment: flip}}\n")),
    Case("config field misspelt", RUN, 2, r"unknown field\(s\) 'eopchs' \(did you mean 'epochs'\?\)",
         suite(" - {name: linear_probe, config: {eopchs: 1}}\n")),
    Case("strategy field negative", RUN, 2, r"strategies\[0\] \(l2p\): config: .*pool_size: -3 must be >= 0",
         suite(" - {name: l2p, config: {pool_size: -3}}\n")),
    Case("config not a mapping", RUN, 2, r"strategies\.0\.config: Input should be a valid dictionary",
         suite(" - {name: linear_probe, config: [1, 2]}\n")),
    # ------------------------------------------------------------------ the rest of a suite file
    Case("scenario override misspelt", RUN, 2,
         r"scenario_overrides\.ci5_glyphs\.num_taks: not a parameter of 'ci5_glyphs' \(did you mean 'num_tasks'\?\)",
         suite(head=TINY.replace("num_tasks: 2", "num_taks: 2"))),
    Case("override for a scenario not run", RUN, 2, r"scenario_overrides\.di_styles: 'di_styles' is not one of",
         suite(head=TINY.replace("scenario_overrides: {", "scenario_overrides: {di_styles: {num_classes: 4}, "))),
    Case("no strategies", RUN, 2, r"strategies: List should have at least 1 item", TINY + "  []\n"),
    Case("no scenarios", RUN, 2, r"scenarios: List should have at least 1 item",
         suite(head=TINY.replace("scenarios: [ci5_glyphs]", "scenarios: []"))),
    Case("no seeds", RUN, 2, r"seeds: List should have at least 1 item", suite(head=TINY.replace("seeds: [0]", "seeds: []"))),
    Case("unknown strategy", RUN, 2, r"strategies\[0\] \(linear_prob\): unknown strategy 'linear_prob'\. Did you mean "
         r"'linear_probe'", suite(" - {name: linear_prob}\n")),
    Case("unknown scenario", RUN, 2, r"scenarios: unknown scenario 'ci7'",
         suite(head=TINY.replace("scenarios: [ci5_glyphs]", "scenarios: [ci5_glyphs, ci7]"))),
    Case("unknown backbone", RUN, 2, r"unknown backbone 'vit_tny'", suite(head=TINY.replace("vit: vit_test_micro", "vit: vit_tny"))),
    Case("backbone under the wrong family", RUN, 2, r"'clip_test_micro' is a 'clip' backbone, listed under 'vit'",
         suite(head=TINY.replace("vit: vit_test_micro", "vit: clip_test_micro"))),
    Case("family the strategy cannot use", RUN, 2, r"families: 'linear_probe' runs on \['vit', 'clip'\], not 'coca'",
         suite(" - {name: linear_probe, families: [coca]}\n")),
    Case("seq2seq method on a CoCa it cannot write with", RUN, 2,
         r"the suite's 'coca' backbone 'coca_test_micro' cannot run seq2seq methods",
         suite(" - {name: seq2seq_lora, families: [coca]}\n")),
    Case("duplicate entries", RUN, 2, r"strategies\[1\] \(linear_probe\) repeats strategies\[0\]", suite(PROBE, PROBE)),
    Case("unknown suite key", RUN, 2, r"seedz: Extra inputs are not permitted", suite(head="seedz: [1]\n" + TINY)),
    Case("suite not YAML", RUN, 2, r"not valid YAML", "name: [unclosed\n"),
    Case("suite a list", RUN, 2, r"expected a mapping of suite fields, got list", "- name: x\n"),
    Case("entry limited to scenarios outside the suite", RUN, 2, r"scenarios: \['b2n_glyphs'\] are not in the suite's",
         suite(" - {name: linear_probe, scenarios: [b2n_glyphs]}\n")),
    # ------------------------------------------------------------------ command-line options of run
    Case("suite name misspelt", ["run", "--suite", "defualt", "--results", "{results}", "--leaderboards", "{boards}"],
         2, r"no suite 'defualt'.*Did you mean 'default'"),
    Case("empty strategy list", [*RUN, "--strategies", ","], 2, r"no strategies selected", suite()),
    Case("strategy option misspelt", [*RUN, "--strategies", "linear_prob"], 2, r"Did you mean 'linear_probe'", suite()),
    Case("scenario option unknown", [*RUN, "--scenarios", "ci7"], 2, r"unknown scenario 'ci7'", suite()),
    Case("seeds not integers", [*RUN, "--seeds", "a,b"], 2, r"--seeds 'a,b': expected comma-separated integers", suite()),
    Case("every cell filtered away", [*RUN, "--scenarios", "di_styles"], 2, r"leaves no cell to run",
         suite(" - {name: linear_probe, scenarios: [ci5_glyphs]}\n")),
    Case("results is a file", ["run", "--suite", "{suite}", "--results", "{tmp}/afile", "--leaderboards", "{boards}"], 2,
         r"--results .*afile is a file, not a folder", suite(), {"afile": "x"}),
    Case("leaderboards is a file", ["run", "--suite", "{suite}", "--results", "{results}", "--leaderboards",
                                    "{tmp}/afile"], 2, r"--leaderboards .*afile is a file", suite(), {"afile": "x"}),
    Case("results read-only", ["run", "--suite", "{suite}", "--results", "/proc/promptshift-results",
                                "--leaderboards", "{boards}"], 2, r"--results /proc/promptshift-results: /proc is not "
         r"writable", suite()),
    Case("device unknown", [*RUN, "--device", "tpu"], 2, r"invalid choice: 'tpu'", suite()),
    Case("command misspelt", ["lsit"], 2, r"unknown command 'lsit'\. Did you mean 'list'\?"),
    Case("plugin file missing", [*RUN, "--plugin", "{tmp}/nope.py"], 2, r"nope\.py", suite()),
    # ------------------------------------------------------------------ leaderboards
    Case("rebuild from no results", ["leaderboard", "--results", "{tmp}/fresh_clone_results", "--leaderboards",
                                     "{boards}"], 2, r"refusing to rebuild .*: from no results folder .*would drop "
                                                     r"table ci5_glyphs\.csv \(1 rows\)"),
    Case("rebuild from an empty folder", ["leaderboard", "--results", "{tmp}/empty", "--leaderboards", "{boards}"], 2,
         r"from 0 result record\(s\) .*would drop", files={"empty/.keep": ""}),
    Case("rebuild from a file", ["leaderboard", "--results", "{tmp}/afile", "--leaderboards", "{boards}"], 2,
         r"--results .*afile is a file, not a folder of result files", files={"afile": "x"}),
    Case("rebuild into a file", ["leaderboard", "--results", "{results}", "--leaderboards", "{tmp}/afile"], 2,
         r"--leaderboards .*afile is a file", files={"afile": "x"}),
    # ------------------------------------------------------------------ submissions
    Case("submit a missing file", ["submit", "{tmp}/nope.json", "--results", "{results}", "--leaderboards", "{boards}"],
         1, r"nope\.json does not exist"),
    Case("submit deep nesting", ["submit", "{tmp}/deep.json", "--results", "{results}", "--leaderboards", "{boards}"],
         1, r"nested more than 32 levels", files={"deep.json": "[" * 50_000 + "]" * 50_000}),
    Case("submit NaN", SUBMIT, 1, r"NaN is not a number JSON allows", record_edit=lambda r: "NaN"),
    Case("submit not UTF-8", ["submit", "{tmp}/latin.json", "--results", "{results}", "--leaderboards", "{boards}"],
         1, r"is not UTF-8 text", files={"latin.json": b'{"a": "\xe9"}'}),
    Case("submit a list", ["submit", "{tmp}/list.json", "--results", "{results}", "--leaderboards", "{boards}"],
         1, r"\$: Input should be a valid dictionary", files={"list.json": "[1, 2]"}),
    Case("submit 1e12 trainable", SUBMIT, 1, r"\$\.strategy\.trainable_params: claimed 1000000000000",
         record_edit=_set("strategy.trainable_params", 10**12)),
    Case("submit another strategy's name", SUBMIT, 1, r"\$\.strategy\.name: 'l2p' differs from \$\.config\.strategy",
         record_edit=_set("strategy.name", "l2p")),
    Case("submit an unknown strategy", SUBMIT, 1, r"unknown strategy 'my_method'",
         record_edit=lambda r: (_set("strategy.name", "my_method")(r), _set("config.strategy", "my_method")(r))),
    Case("submit false flags", SUBMIT, 1, r"\$\.strategy\.flags: claimed",
         record_edit=_set("strategy.flags.replay_memory", True)),
    Case("submit an inflated metric", SUBMIT, 1, r"\$\.metrics\.final_accuracy: claimed 0\.99",
         record_edit=_set("metrics.final_accuracy", 0.99)),
    Case("submit a failed record", SUBMIT, 1, r"\$\.status: Input should be 'ok'", record_edit=_set("status", "failed")),
    # ------------------------------------------------------------------ other commands
    Case("pretrain family misspelt", ["pretrain", "--only", "vitt"], 2, r"--only: 'vitt' \(did you mean 'vit'\?\)"),
    Case("check-plugin override without value", ["check-plugin", "{tmp}/p.py", "--set", "epochs"], 2,
         r"--set 'epochs': expected FIELD=VALUE"),
    Case("check-plugin override out of range", ["check-plugin", "{tmp}/good.py", "--set", "epochs=-1"], 2,
         r"--set: .*epochs: -1 must be >= 0",
         files={"good.py": PLUGIN.format(name="good_probe_bad_inputs", output="self.head(self.backbone(x))",
                                         after_task="pass")}),
    # ------------------------------------------------------------------ run-time guards (these train a micro cell)
    Case("plugin with NaN logits", [*RUN, "--plugin", "{tmp}/nan_plugin.py"], 1,
         r"all 1 cells failed.*leaderboards left unchanged",
         suite(" - {name: nan_probe_bad_inputs, config: {epochs: 1}}\n"),
         {"nan_plugin.py": PLUGIN.format(name="nan_probe_bad_inputs", output="self.head(self.backbone(x)) * "
                                                                              "float('nan')", after_task="pass")},
         trains=True),
    Case("plugin editing frozen weights", [*RUN, "--plugin", "{tmp}/edit_plugin.py"], 1, r"all 1 cells failed",
         suite(" - {name: edit_probe_bad_inputs, config: {epochs: 1}}\n"),
         {"edit_plugin.py": PLUGIN.format(name="edit_probe_bad_inputs", output="self.head(self.backbone(x))",
                                          after_task="next(self.backbone.parameters()).data.add_(0.01)")},
         trains=True),
]


# ---------------------------------------------------------------------------- issue 22: inputs nobody tested
def _edit_stored(edit: Callable[[dict], object]) -> Callable[[Path, Path, Path], None]:
    """Setup: the stored runner record of the results copy, edited in place (rewritten as plain JSON)."""
    def setup(tmp: Path, results: Path, boards: Path) -> None:
        path = next(p for p in results.glob("*.json"))
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))
    return setup


def _replace_stored_text(old: str, new: str) -> Callable[[Path, Path, Path], None]:
    def setup(tmp: Path, results: Path, boards: Path) -> None:
        path = next(p for p in results.glob("*.json"))
        path.write_text(path.read_text().replace(old, new, 1))
    return setup


def _symlink(name: str, target: str) -> Callable[[Path, Path, Path], None]:
    def setup(tmp: Path, results: Path, boards: Path) -> None:
        link = (results if name.startswith("results/") else tmp) / name.removeprefix("results/")
        link.symlink_to(target if target.startswith("/") else tmp / target)
    return setup


def _submitted_then_unbuildable(tmp: Path, results: Path, boards: Path) -> None:
    """An accepted submission, then a table the results cannot rebuild: the next rebuild is refused."""
    record = ResultStore(results).records()[0]
    (tmp / "first.json").write_text(json.dumps(record))
    assert cli.main(["submit", str(tmp / "first.json"), "--results", str(results), "--leaderboards",
                     str(boards)]) == 0
    (boards / "other_suite.csv").write_text("scenario,strategy\nx,y\n")


def _override(key: str, value) -> Callable[[dict], None]:
    def edit(record):
        record["config"]["scenario_overrides"][key] = value
    return edit


BOMB = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 9) + "]\n" for i in range(9))
CASES += [
    # suite YAML
    Case("yaml alias bomb", RUN, 2, r"more than 32 aliases", BOMB + suite()),
    Case("yaml alias bomb inside an override", RUN, 2, r"more than 32 aliases|expands to more than",
         "a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n" + suite().replace("test_per_font: 1}", "test_per_font: 1, "
                                                                     "domain: *d}")),
    Case("yaml duplicate key", RUN, 2, r"duplicate key 'seeds'", suite().replace("seeds: [0]\n", "seeds: [0]\nseeds: [1]\n")),
    Case("yaml boolean seed", RUN, 2, r"seeds: .*a boolean where a number belongs", suite().replace("seeds: [0]", "seeds: [true]")),
    Case("yaml byte-order mark accepted", [*RUN, "--dry-run"], 0, r"suite tiny v1: plan", "\ufeff" + suite()),
    Case("entry with no scenarios", RUN, 2, r"strategies\.0\.scenarios: List should have at least 1 item",
         suite(" - {name: linear_probe, scenarios: []}\n")),
    Case("label naming another strategy", RUN, 2, r"label: 'l2p' is the name of another registered strategy",
         suite(" - {name: linear_probe, label: l2p}\n")),
    Case("label with mathtext", RUN, 2, r"label: .*characters a label cannot have",
         suite(" - {name: linear_probe, label: 'a$x$b'}\n")),
    Case("label a spreadsheet formula", RUN, 2, r"label: .*characters a label cannot have",
         suite(" - {name: linear_probe, label: '=HYPERLINK(1)'}\n")),
    Case("weights field accepted", [*RUN, "--dry-run"], 0, r"suite tiny v1: plan",
         suite().replace("seeds: [0]", "seeds: [0]\nweights: {vit: w.pt}"), {"w.pt": b"not read by a dry run"}),
    Case("weights file missing", RUN, 2, r"weights: '.*nowhere\.pt' is not a file",
         suite().replace("seeds: [0]", "seeds: [0]\nweights: nowhere.pt")),
    Case("robustness budget 1/0", RUN, 2, r"budget '1/0' is not a number",
         suite().replace("seeds: [0]", "seeds: [0]\nrobustness: {eps: ['1/0']}")),
    # command-line options
    Case("results empty", ["run", "--suite", "{suite}", "--results", "", "--leaderboards", "{boards}"], 2,
         r"--results is empty", suite()),
    Case("leaderboards empty", ["leaderboard", "--results", "{results}", "--leaderboards", ""], 2,
         r"--leaderboards is empty"),
    Case("submit into empty results", ["submit", "{record}", "--results", "", "--leaderboards", "{boards}"], 2,
         r"--results is empty", record_edit=lambda r: None),
    Case("pretrain only empty", ["pretrain", "--only", ""], 2, r"--only: nothing is not a backbone family"),
    Case("time limit zero", [*RUN, "--time-limit", "0"], 2, r"--time-limit 0: expected a positive number", suite()),
    Case("data root a symlink loop", [*RUN, "--data-root", "{tmp}/loop"], 2, r"error: ", suite(),
         setup=_symlink("loop", "loop")),
    # plugins
    Case("plugin exits on import", [*RUN, "--plugin", "{tmp}/exits.py"], 2, r"exits\.py called sys\.exit\(0\)",
         suite(), {"exits.py": "import sys\nsys.exit(0)\n"}),
    Case("plugin prints on import", ["list", "--json", "--fresh", "--plugin", "{tmp}/prints.py"], 2,
         r"prints\.py printed while being imported \('hello'\)", files={"prints.py": "print('hello')\n"}),
    Case("plugin beside built-in cells in one process", [*RUN, "--workers", "0", "--plugin", "{tmp}/good.py"], 2,
         r"--workers 0 runs every cell in this process",
         suite(), {"good.py": PLUGIN.format(name="good_probe_one_process", output="self.head(self.backbone(x))",
                                             after_task="pass")}),
    Case("plugin replacing a frozen parameter", [*RUN, "--plugin", "{tmp}/swap_plugin.py"], 1, r"all 1 cells failed",
         suite(" - {name: swap_probe_bad_inputs, config: {epochs: 1}}\n"),
         {"swap_plugin.py": PLUGIN.format(name="swap_probe_bad_inputs", output="self.head(self.backbone(x))",
                                          after_task="self.backbone.encoder.cls_token = nn.Parameter("
                                                     "self.backbone.encoder.cls_token.detach() + 1.0, "
                                                     "requires_grad=False)")},
         trains=True),
    # stored results read by a rebuild
    Case("stored metric doctored", ["leaderboard", "--results", "{results}", "--leaderboards", "{boards}"], 0,
         r"stored final_accuracy 0\.99 differs from its accuracy matrix",
         setup=_edit_stored(_set("metrics.final_accuracy", 0.99))),
    Case("ok record with no metrics", ["leaderboard", "--results", "{results}", "--leaderboards", "{boards}"], 0,
         r"wrote \d+ files", setup=_edit_stored(lambda r: r.pop("metrics"))),
    Case("stored record with duplicate keys", ["leaderboard", "--results", "{results}", "--leaderboards", "{boards}"],
         2, r"refusing to rebuild", setup=_replace_stored_text('"status": "ok"', '"status": "ok", "status": "ok"')),
    Case("/dev/zero in results", ["leaderboard", "--results", "{results}", "--leaderboards", "{boards}"], 0,
         r"wrote \d+ files", setup=_symlink("results/zero.json", "/dev/zero")),
    # submissions
    Case("submit duplicate keys", ["submit", "{tmp}/dup.json", "--results", "{results}", "--leaderboards", "{boards}"],
         1, r"duplicate key 'status'", files={"dup.json": '{"status": "ok", "status": "failed"}'}),
    Case("submit a huge scenario", SUBMIT, 1, r"train_per_font: 20000 is more than the registered scenario's 3",
         record_edit=_override("train_per_font", 20000)),
    Case("submit a boolean override", SUBMIT, 1, r"num_tasks: True where the registered scenario has the number",
         record_edit=_override("num_tasks", True)),
    Case("submit a 2 MB label", SUBMIT, 1, r"\$\.strategy\.label: 2000000 characters",
         record_edit=_set("strategy.label", "x" * 2_000_000)),
    Case("submit a mathtext label", SUBMIT, 1, r"characters a label cannot have",
         record_edit=_set("strategy.label", "$x$ and $y$")),
    Case("submit a formula label", SUBMIT, 1, r"characters a label cannot have",
         record_edit=_set("strategy.label", "=cmd|'/c calc'!A1")),
    Case("submit a label naming another strategy", SUBMIT, 1, r"'l2p' is the name of another registered strategy",
         record_edit=_set("strategy.label", "l2p")),
    Case("submit --replace refused keeps the earlier submission", [*SUBMIT, "--replace"], 2, r"refusing to rebuild",
         record_edit=_set("timing.train_seconds", 12345.0), setup=_submitted_then_unbuildable),
    # a plugin's config class whose default is not JSON data: the cell id cannot be computed from it
    Case("plugin config default a frozenset", [*RUN, "--plugin", "{tmp}/set_default.py"], 2,
         r"strategies\[0\] \(set_default_probe\): its config is not JSON data \(.*frozenset.*\); config values must",
         suite(" - {name: set_default_probe}\n"),
         {"set_default.py": CONFIGURED_PLUGIN.format(name="set_default_probe", field="tags: frozenset",
                                                     default="frozenset({'a', 'b'})")}),
    Case("plugin config default an object", [*RUN, "--plugin", "{tmp}/object_default.py"], 2,
         r"strategies\[0\] \(object_default_probe\): its config is not JSON data \(.*object.*\); config values must",
         suite(" - {name: object_default_probe}\n"),
         {"object_default.py": CONFIGURED_PLUGIN.format(name="object_default_probe", field="marker: object",
                                                        default="object()")}),
    # a good input once refused ("unhashable type: 'list'"): a domains list, run to the end (tables elsewhere, so
    # the stored tables are hashed unchanged; the results folder gains exactly the new cell's record and log)
    Case("domains list in a scenario override runs", ["run", "--suite", "{suite}", "--results", "{results}",
                                                      "--leaderboards", "{tmp}/boards_di", "--no-progress"], 0,
         r"ok\s+di_styles\s+linear_probe.*1 cells ok, 0 failed; leaderboards: .*boards_di",
         suite(head=TINY.replace("scenarios: [ci5_glyphs]", "scenarios: [di_styles]").replace(
             "{ci5_glyphs: {num_tasks: 2,", "{di_styles: {domains: [clean, noisy],")),
         adds_ok=lambda r: (r["config"]["scenario_overrides"]["domains"] == ["clean", "noisy"]
                            and r["scenario"]["domains"] == ["clean", "noisy"]
                            and [len(row) for row in r["results"]["acc_matrix"]] == [2, 2])),
]
if not torch.cuda.is_available():
    CASES.append(Case("cuda without a GPU", [*RUN, "--device", "cuda"], 2, r"--device cuda was asked for, but torch "
                      r"sees no CUDA device", suite()))
GUARD_MESSAGES = {"plugin with NaN logits": "non-finite", "plugin editing frozen weights": "frozen weights changed",
                  "plugin replacing a frozen parameter": "replaced by a new object"}


def _hashes(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders if folder.exists()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """One finished micro cell and the leaderboards built from it (the state every row must leave alone)."""
    root = tmp_path_factory.mktemp("baseline")
    (root / "tiny.yaml").write_text(suite())
    code = cli.main(["run", "--suite", str(root / "tiny.yaml"), "--results", str(root / "results"),
                     "--leaderboards", str(root / "boards"), "--no-progress"])
    assert code == 0 and (root / "boards" / "ci5_glyphs.csv").is_file()
    return root


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, baseline: Path, tmp_path: Path, capsys):
    results, boards = tmp_path / "results", tmp_path / "boards"
    shutil.copytree(baseline / "results", results)
    shutil.copytree(baseline / "boards", boards)
    if case.suite is not None:
        (tmp_path / "tiny.yaml").write_text(case.suite)
    for name, content in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content)
    if case.record_edit is not None:
        record = copy.deepcopy(ResultStore(results).records()[0])
        text = case.record_edit(record)
        text = json.dumps(record).replace(str(record["results"]["acc_matrix"][0][0]), "NaN", 1) \
            if text == "NaN" else json.dumps(record)
        (tmp_path / "record.json").write_text(text)
    if case.setup is not None:
        case.setup(tmp_path, results, boards)
    before = _hashes(results, boards)
    values = {"suite": tmp_path / "tiny.yaml", "results": results, "boards": boards, "tmp": tmp_path,
              "record": tmp_path / "record.json"}
    argv = [arg.format(**values) for arg in case.argv]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out = capsys.readouterr()
    said = out.out + out.err
    assert code == case.code, said[-3000:]
    assert re.search(case.message, said, re.S), said[-3000:]
    assert "Traceback" not in said
    after = _hashes(results, boards)
    if case.trains:  # the guard's own failed record is added; nothing that was there changes
        added = sorted(set(after) - set(before))
        assert {k: after[k] for k in before} == before
        assert len(added) == 2 and all(k.startswith(str(results)) for k in added)  # record and its log
        failed = [r for r in ResultStore(results).records() if r["status"] == "failed"]
        assert len(failed) == 1 and GUARD_MESSAGES[case.id] in failed[0]["error"]
    elif case.adds_ok is not None:  # a good input: accepted and run; nothing that was stored changes
        added = sorted(set(after) - set(before))
        assert {k: after[k] for k in before} == before
        assert len(added) == 2 and all(k.startswith(str(results)) for k in added)  # record and its log
        new = [r for r in ResultStore(results).records() if str(ResultStore(results).path_for(r["cell_id"]))
               in added]
        assert len(new) == 1 and new[0]["status"] == "ok" and case.adds_ok(new[0]), new
    else:
        assert after == before


def test_the_table_has_at_least_40_rows():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
