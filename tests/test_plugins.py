"""`run_bench.py check-plugin`: a good plugin passes every check; broken ones fail the right check, clearly."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import cli
from bench.contract.check import check_declared, check_plugin
from bench.contract.plugins import PluginError
from bench.core.strategy import STRATEGIES, Strategy

PLUGIN = '''
from dataclasses import dataclass

import torch
from torch import nn

from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy


@dataclass(frozen=True)
class ProbeConfig(StrategyConfig):
    epochs: int = hp(10, "passes over each task's data")
    lr: float = hp(0.1, "learning rate")


@register_strategy("{name}", config=ProbeConfig)
class Probe(Strategy):
    """A test probe (Nobody et al., 2024). Trains: a linear head. Freezes: the backbone."""

    family = "baseline"
    paper = "Nobody et al., 2024"
    flags = Flags()
    supported_scenarios = ("class_incremental",)
    backbone_families = ("vit",)
    needs_pixels = False

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def frozen_inputs(self, x):
        return self.backbone(x)

    def forward(self, x, cached=None):
        return {output}

{extra}
'''
HEAD = "self.head(cached if cached is not None else self.backbone(x))"
# Moves a backbone weight behind the harness's back (the harness froze it, so only a hook can).
MOVES_FROZEN = '''
    def after_task(self, ctx):
        with torch.no_grad():
            next(self.backbone.parameters()).add_(0.01)
'''


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Plugins registered by a test vanish after it, so no other test ever sees them."""
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))


def write_plugin(tmp_path: Path, name: str, output: str = HEAD, extra: str = "") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(PLUGIN.format(name=name, output=output, extra=textwrap.indent(extra, "")))
    return path


def by_check(results) -> dict[str, list]:
    out: dict[str, list] = {}
    for result in results:
        out.setdefault(result.check, []).append(result)
    return out


def test_good_plugin_passes_every_check_and_exits_zero(tmp_path, capsys):
    path = write_plugin(tmp_path, "good_probe_test")
    assert cli.main(["check-plugin", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    checks = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert checks and all(line.startswith("PASS") for line in checks), "\n".join(lines)
    names = {line.split("  ")[2].split(":")[0] for line in checks}
    assert names == {"config", "declared", "documented", "trainable", "frozen", "outputs", "learns",
                     "deterministic"}


def test_moving_a_frozen_weight_fails_frozen_and_trainable(tmp_path, capsys):
    path = write_plugin(tmp_path, "sneaky_probe_test", extra=MOVES_FROZEN)
    results = by_check(check_plugin(path))
    frozen, trainable = results["frozen"][0], results["trainable"][0]
    assert not frozen.passed and "frozen weights changed: backbone." in frozen.detail
    assert not trainable.passed and "updated but not declared trainable: backbone." in trainable.detail
    assert all(r.passed for r in results["outputs"] + results["config"] + results["declared"])


def test_nan_outputs_fail_the_outputs_check_and_exit_nonzero(tmp_path, capsys):
    path = write_plugin(tmp_path, "nan_probe_test", output=f"{HEAD} * float('nan')")
    assert cli.main(["check-plugin", str(path)]) == 1
    out = capsys.readouterr().out
    outputs = next(line for line in out.splitlines() if "outputs:" in line)
    assert outputs.startswith("FAIL") and "non-finite" in outputs
    assert "checks passed" in out


def test_syntax_error_is_one_clear_paragraph_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "broken_syntax.py"
    path.write_text("from bench.core.strategy import Strategy\n\ndef oops(:\n    pass\n")
    assert cli.main(["check-plugin", str(path)]) == 2
    captured = capsys.readouterr()
    message = captured.out + captured.err
    assert "failed to import: SyntaxError" in message and "broken_syntax.py" in message
    assert "Traceback" not in message and len(message.strip().splitlines()) <= 3


def test_plugin_that_registers_nothing_is_a_clear_error(tmp_path):
    path = tmp_path / "empty_plugin.py"
    path.write_text("VALUE = 1\n")
    with pytest.raises(PluginError, match="registers no strategy"):
        check_plugin(path)


def test_undeclared_flags_fail_the_declared_check():
    class Undeclared(Strategy):
        """Trains: nothing. Freezes: everything."""

        paper = "Nobody, 2024"
        family = "baseline"

    passed, detail = check_declared(Undeclared)
    assert not passed
    assert "flags is not set" in detail and "supported_scenarios is not set" in detail


ZERO_SHOT = '''
    def trainable_parameters(self):
        return iter(())
'''


def test_training_free_is_a_declaration(tmp_path):
    """A strategy that trains nothing passes by declaring `training_free = True` (as zeroshot_clip does); without
    it an empty declaration fails, and declaring it while yielding parameters fails too."""
    def run(name: str, extra: str) -> dict[str, list]:
        return by_check(check_plugin(write_plugin(tmp_path, name, extra=extra), {"epochs": 1}))

    forgot = run("forgot_probe_test", ZERO_SHOT)["trainable"][0]
    assert not forgot.passed and "declares nothing" in forgot.detail
    free = run("free_probe_test", ZERO_SHOT + "\n    training_free = True\n")
    # (not "learns": this probe's head stays random; a training-free method must still predict well by itself)
    checked = [r for check in ("trainable", "frozen", "outputs", "deterministic") for r in free[check]]
    assert all(r.passed for r in checked), [r.line() for r in checked]
    liar = run("liar_probe_test", "\n    training_free = True\n")["trainable"][0]
    assert not liar.passed and "training_free = True, yet" in liar.detail


def test_a_missing_or_broken_plugin_is_refused_before_torch_loads(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    probe = ("import sys; from bench import cli; "
             "print([cli.main(['check-plugin', p]) for p in sys.argv[1:]], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "missing.py"), str(broken)],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert out.stdout.split() == ["[2,", "2]", "False"], out.stderr
    assert "does not exist" in out.stderr and "SyntaxError" in out.stderr and "line 1" in out.stderr
