"""The command line explains itself: `--help` lists every command, each command's help names it, every option has
a line, `list` keeps its columns aligned, and `list --json` carries each strategy's docstring (the README says so)."""
from __future__ import annotations

import json
import re

import pytest

from bench import cli


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_command(capsys):
    text = _help(capsys)
    for command in cli.COMMANDS:
        assert re.search(rf"^\s+{re.escape(command)}\s+\S", text, re.M), command


@pytest.mark.parametrize("command", ["plan", "run", "list", "leaderboard", "pretrain", "submit"])
def test_a_commands_help_names_it_and_explains_every_option(capsys, command):
    text = _help(capsys, command)
    assert text.startswith(f"usage: promptshift {command}")
    sub = next(a for a in cli._parser()._actions if a.dest == "command").choices[command]
    silent = [a.option_strings[0] for a in sub._actions if a.option_strings and not a.help]
    assert silent == [], f"options without help: {silent}"


def test_only_plan_is_a_dry_run():
    assert cli._parser().parse_args(["plan"]).command == "plan"
    assert cli._parser().parse_args(["run"]).dry_run is False  # plan's options must not leak into run's


def test_plan_runs_nothing_and_says_it_is_a_plan(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: t\nversion: 1\nseeds: [0]\nbackbones: {vit: vit_test_micro}\nscenarios: [ci5_glyphs]\n"
                     "strategies: [{name: linear_probe}]\n")
    assert cli.main(["plan", "--suite", str(suite), "--results", str(tmp_path / "r")]) == 0
    assert "plan (nothing runs)" in capsys.readouterr().out and not (tmp_path / "r").exists()


def test_list_aligns_long_names_and_json_has_docstrings(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for section in ("scenarios:", "backbones:", "strategies:"):
        start = lines.index(section) + 1
        rows = []
        for line in lines[start:]:
            if not line.startswith("  "):
                break
            rows.append(line)
        second = {len(re.match(r"  \S+ +", row).group(0)) for row in rows}  # where the second column starts
        assert len(second) == 1, f"{section} columns misaligned: {sorted(second)}"
    assert cli.main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "Trains:" in data["strategies"]["vpt_shallow"]["doc"]
