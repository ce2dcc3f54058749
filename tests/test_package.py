"""The installed package, not the checkout: build the wheel, install it into a fresh venv, and use `promptshift`
from a folder outside the checkout (version, list, one micro cell on the shipped vit_glyph_tiny checkpoint)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from bench.cli import version
from scenarios.cache import cache_dir

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.package

SUITE = """\
name: package_check
version: 1
seeds: [0]
backbones: {vit: vit_glyph_tiny}
scenarios: [ci5_glyphs]
scenario_overrides:
  ci5_glyphs: {num_tasks: 2, num_classes: 8, train_per_font: 2, test_per_font: 1}
strategies:
  - {name: linear_probe, families: [vit], config: {epochs: 1}}
"""


def _source_copy(dest: Path) -> Path:
    """What the wheel is built from, copied first so the build never writes build/ or egg-info into the checkout."""
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("bench", "strategies", "scenarios"):
        shutil.copytree(ROOT / name, dest / name, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the promptshift wheel; the already-installed dependencies (torch, timm, ...) are
    reached through a .pth line, so nothing is downloaded and the project's own editable install is not seen."""
    base = tmp_path_factory.mktemp("package")
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(_source_copy(base / "src"))], check=True, capture_output=True)
    (wheel,) = wheels.glob("promptshift-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # A bare path in a .pth file adds that folder but runs none of its own .pth files (so not the editable hook).
    (site / "promptshift-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    return venv


def _promptshift(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PROMPTSHIFT_CACHE=str(cache_dir()))  # the glyph cache the other tests filled
    return subprocess.run([str(venv / "bin" / "promptshift"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_wheel_ships_checkpoints_suites_schema_and_the_console_command(installed: Path) -> None:
    (wheel,) = installed.parent.glob("wheels/promptshift-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = ROOT / "bench" / "models" / "checkpoints_data"
    assert {f"bench/models/checkpoints_data/{p.name}" for p in shipped.iterdir()} <= names
    assert {f"bench/suites/{p.name}" for p in (ROOT / "bench" / "suites").glob("*.yaml")} <= names
    assert {"bench/schema/result.schema.json", "bench/report/references.yaml"} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "promptshift = bench.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_command_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    python = installed / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import bench; print(bench.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, check=True)
    assert Path(probe.stdout.strip()).is_relative_to(installed), probe.stdout  # the wheel's code, not the checkout

    shown = _promptshift(installed, tmp_path, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"promptshift {version()}", shown

    listed = _promptshift(installed, tmp_path, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert {"linear_probe", "coop", "ofa_prompt_coca"} <= set(data["strategies"])
    assert "default" in data["suites"] and "vit_glyph_tiny" in data["backbones"]

    (tmp_path / "tiny.yaml").write_text(SUITE)
    ran = _promptshift(installed, tmp_path, "run", "--suite", "tiny.yaml", "--device", "cpu", "--no-progress")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (result,) = (tmp_path / "results").glob("*.json")  # ./results of the current directory
    record = json.loads(result.read_text())
    assert record["status"] == "ok" and record["config"]["backbone"] == "vit_glyph_tiny"
    assert record["env"]["code_version"] == f"promptshift-{version()}"  # not the git hash of some outer repo
    final = record["results"]["acc_matrix"][-1]
    assert all(0.0 <= a <= 1.0 for a in final) and final[-1] > 0.5  # last task: 4 classes, so chance is 0.25
    assert (tmp_path / "leaderboards" / "ci5_glyphs.md").is_file()
