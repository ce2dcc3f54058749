"""The reporting commands start fast: `leaderboard`, `submit` and `list`, and importing their modules, load neither
torch nor scipy.stats (seconds on a busy machine); `plan` reads the cached listing instead of importing every
strategy, and names the very cells and ids a run computes; `submit` loads torch only to recompute an accepted-looking
record's facts. Checked in a fresh interpreter, whose sys.modules is its own. The times themselves are a
`python -m bench.perf` row (leaderboard and plan start-up against --help), never a timed test."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.store import ResultStore
from bench.run.catalog import listed_catalog, live_catalog
from bench.run.suite import SUITE_DIR, SuiteError, expand, load_suite
from test_html_report import synthetic_records
from test_submit import runner_record  # noqa: F401  (the fixture: a real record written by the runner)

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "scipy.stats", "avalanche", "timm", "open_clip")


def _heavy_after(code: str, cwd: Path, cache: Path | None = None) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if cache is not None:
        env["PROMPTSHIFT_CACHE"] = str(cache)
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_reporting_entry_points_loads_no_torch(tmp_path):
    code = "import bench.cli, bench.report.leaderboard, bench.run.submit, bench.run.listing, bench.report.stats"
    assert _heavy_after(code, tmp_path) == []


def test_a_leaderboard_rebuild_loads_no_torch(tmp_path):
    store = ResultStore(tmp_path / "results")
    for rec in synthetic_records():  # several seeds' worth of rows: intervals need a t quantile
        store.write(rec)
        store.write({**rec, "cell_id": rec["cell_id"] + "-s1", "config": {**rec["config"], "seed": 1}})
    code = ("from bench.cli import main\n"
            "assert main(['leaderboard', '--results', 'results', '--leaderboards', 'boards']) == 0")
    assert _heavy_after(code, tmp_path) == []
    assert (tmp_path / "boards" / "index.html").is_file()


@pytest.fixture(scope="module")
def listed_cache(tmp_path_factory) -> Path:
    """A cache folder holding the listing, as any earlier `list`, `plan` or `submit` leaves it (built in a fresh
    interpreter: this test process may hold strategies other tests registered)."""
    cache = tmp_path_factory.mktemp("cache")
    assert "torch" in _heavy_after("from bench.run.listing import listing\nlisting()", cache, cache)
    return cache


def test_plan_loads_no_torch_once_the_listing_is_cached(listed_cache, tmp_path):
    code = ("import contextlib, io\nfrom bench.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    assert main(['plan', '--suite', 'default', '--results', 'r', '--leaderboards', 'b']) == 0\n"
            "assert 'plan (nothing runs)' in out.getvalue() and ' cells:' in out.getvalue(), out.getvalue()")
    assert _heavy_after(code, tmp_path, listed_cache) == []


def _expansion(name: str, catalog) -> list[tuple[str, object]] | str:
    try:
        cells, skipped = expand(load_suite(name, catalog), catalog=catalog)
    except SuiteError as error:
        return f"error: {error}"
    return [(cell.cell_id(catalog.strategies.get(cell.strategy).config_cls), cell) for cell in cells] + skipped


def _cached_listing(cache: Path) -> dict:
    [path] = cache.glob("listing-*.json")  # the file `plan` reads
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_listing_expands_every_suite_into_the_runs_cells_and_ids(listed_cache):
    listed, live = listed_catalog(_cached_listing(listed_cache)), live_catalog()
    assert listed is not None
    plans = {path.stem: _expansion(path.stem, listed) for path in sorted(SUITE_DIR.glob("*.yaml"))}
    assert len(plans["default"]) > 50 and all(isinstance(item, tuple) for item in plans["default"][:50])
    for name, plan in plans.items():
        assert plan == _expansion(name, live), name
    # the ids are the runner's own: CellConfig.cell_id() with the registered strategy's config
    cells = [item for item in plans["default"] if isinstance(item, tuple)]  # the rest: notes of skipped pairs
    assert [cell_id for cell_id, _ in cells] == [cell.cell_id() for _, cell in cells]


def test_listed_configs_normalise_and_refuse_as_the_registered_ones(listed_cache):
    listed, live = listed_catalog(_cached_listing(listed_cache)), live_catalog()
    values = [{}, {"epochs": "2", "lr": "1e-3"}, {"augment": "none", "schedule": "cosine"}, {"lr": -1.0},
              {"epochs": True}, {"lrr": 0.1}, {"augment": "rrc_flip"}]
    for name in listed.strategies.names():
        ours, theirs = listed.strategies.get(name).config_cls, live.strategies.get(name).config_cls
        for given in values:
            outcomes = []
            for cls in (ours, theirs):
                try:
                    outcomes.append(cls.from_dict(dict(given)).to_dict())
                except ValueError as error:
                    outcomes.append(f"error: {error}")
            assert outcomes[0] == outcomes[1], (name, given)


def test_a_submission_refused_by_its_cheap_checks_loads_no_torch(runner_record, listed_cache, tmp_path):  # noqa: F811
    wrong_metric = copy.deepcopy(runner_record)
    name, value = "final_accuracy", wrong_metric["metrics"]["final_accuracy"]
    wrong_metric["metrics"][name] = value + 0.05 if value < 0.9 else value - 0.05
    wrong_backbone = copy.deepcopy(runner_record)
    wrong_backbone["config"]["backbone"] = "vit_glyph_tiniest"
    for file, record in (("metric.json", wrong_metric), ("backbone.json", wrong_backbone)):
        (tmp_path / file).write_text(json.dumps(record))
    code = ("import contextlib, io\nfrom bench.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    for f in ('metric.json', 'backbone.json'):\n"
            "        assert main(['submit', f, '--results', 'r', '--leaderboards', 'b']) == 1\n"
            f"assert 'metrics.{name}: claimed' in out.getvalue(), out.getvalue()\n"
            "assert \"unknown backbone 'vit_glyph_tiniest'\" in out.getvalue(), out.getvalue()")
    assert _heavy_after(code, tmp_path, listed_cache) == []
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").glob("*.json"))


def test_an_accepted_submission_loads_torch_to_recompute_its_facts(runner_record, listed_cache,  # noqa: F811
                                                                   tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps(runner_record))
    code = "from bench.cli import main\nassert main(['submit', 'ok.json', '--results', 'r', '--leaderboards', 'b']) == 0"
    assert "torch" in _heavy_after(code, tmp_path, listed_cache)  # parameters are counted on the built strategy
    [stored] = ResultStore(tmp_path / "r").records()
    assert stored["submitted"] is True
