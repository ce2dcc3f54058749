"""The HTML leaderboard in a real browser: rows render, a header click sorts, images load, screenshot saved.

Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`; `make test` does
it) and the `selenium` package; without them the browser tests skip and say why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.core.store import ResultStore
from bench.eval.metrics import summarize
from bench.report.html_report import REFERENCE_TITLE, pareto_front, render_page, write_html
from bench.report.leaderboard import build_leaderboards
from bench.report.references import Reference

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
NO_FLAGS = {"task_id_at_test": False, "batchwise_inference": False, "extra_forward_passes": 0,
            "replay_memory": False, "unlabelled_target": False, "class_names": False, "joint_training": False}


def record(strategy: str, scenario: str, kind: str, matrix: list[list[float]], eval_names: list[str], *,
           trainable: int, seed: int = 0, submitted: bool = False, flags: dict[str, Any] | None = None,
           robustness: dict[str, Any] | None = None, seconds: float = 12.0) -> dict[str, Any]:
    """A finished cell in bench.run.runner's layout, with metrics computed from the matrix as the runner does."""
    config = {"scenario": scenario, "strategy": strategy, "backbone": "vit_glyph_tiny", "seed": seed,
              "strategy_config": {"epochs": 1}, "scenario_overrides": {}, "weights": None, "robustness": None,
              "protocol_version": 1}
    cell_id = f"{scenario}-{len(strategy)}{strategy[:3].strip('<')}-{seed}-{int(submitted)}"  # a safe file name
    out = {"schema_version": 1, "cell_id": cell_id,
           "config": config, "submitted": submitted, "status": "ok", "error": None,
           "env": {"code_version": "test", "packages": {"python": "3.11", "torch": "2.14.1"}, "device": "cpu"},
           "scenario": {"name": scenario, "kind": kind, "seed": seed, "num_steps": len(matrix),
                        "eval_names": eval_names},
           "strategy": {"name": strategy, "label": strategy, "family": "prompt", "paper": "Test et al., 2024",
                        "flags": {**NO_FLAGS, **(flags or {})}, "backbone_family": "vit",
                        "trainable_params": trainable, "backbone_params": 1_000_000,
                        "trainable_share": trainable / 1_000_000, "params_per_new_task": 0},
           "results": {"acc_matrix": matrix, "eval_names": eval_names, "final_losses": [0.5] * len(matrix)},
           "metrics": summarize(matrix, eval_names, kind),
           "timing": {"train_seconds": seconds - 2, "eval_seconds": 2.0, "total_seconds": seconds},
           "memory": {"peak_mb": 300.0 + trainable / 1000, "measure": "peak RSS increase during the cell (sampled)"}}
    if robustness is not None:
        out["robustness"] = robustness
    return out


def robust(clean: float) -> dict[str, Any]:
    return {"clean": clean, "fgsm": {"1/255": clean - 0.1, "4/255": clean - 0.3},
            "pgd": {"1/255": clean - 0.15, "4/255": clean - 0.4}, "autoattack": {"eps": "4/255", "acc": clean - 0.45},
            "corruptions": {"mean": clean - 0.2, "per_corruption": {"fog": clean - 0.2}}}


def synthetic_records() -> list[dict[str, Any]]:
    ci = ["task0", "task1", "task2"]
    records = [
        record("linear_probe", "ci3_glyphs", "class_incremental",
               [[0.9, 0.0, 0.0], [0.5, 0.85, 0.0], [0.3, 0.4, 0.8]], ci, trainable=1_000,
               robustness=robust(0.6), seconds=5.0),
        record("vpt_shallow", "ci3_glyphs", "class_incremental",
               [[0.95, 0.0, 0.0], [0.8, 0.9, 0.0], [0.7, 0.8, 0.9]], ci, trainable=20_000,
               robustness=robust(0.8), seconds=30.0),
        record("l2p", "ci3_glyphs", "class_incremental",
               [[0.9, 0.0, 0.0], [0.7, 0.9, 0.0], [0.6, 0.7, 0.8]], ci, trainable=50_000,
               flags={"extra_forward_passes": 1}, seconds=60.0),
        record("<script>alert(1)</script>", "ci3_glyphs", "class_incremental",
               [[0.97, 0.0, 0.0], [0.9, 0.95, 0.0], [0.85, 0.9, 0.93]], ci, trainable=5_000, submitted=True,
               seconds=8.0),
        record("coop", "b2n_glyphs", "base_to_new", [[0.9, 0.6]], ["base", "new"], trainable=512,
               flags={"class_names": True}),
        record("cocoop", "b2n_glyphs", "base_to_new", [[0.85, 0.7]], ["base", "new"], trainable=3_000,
               flags={"class_names": True}),
    ]
    records[2]["timing"].pop("total_seconds")  # a missing number: shown as "—", sorted last
    return records


REFERENCES = [Reference(paper="Wang et al., CVPR 2022", method="L2P", protocol="class_incremental",
                        metric="final_accuracy", value=83.83, unit="percent")]


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 0.5), (100, 0.7), (50, 0.4), (1000, 0.65), (5, 0.2)]
    assert sorted(pareto_front(points)) == [0, 1, 4]


def test_page_is_self_contained_and_keeps_references_apart(tmp_path):
    page = render_page(synthetic_records(), REFERENCES)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # nothing fetched
    assert page.count("data:image/png;base64,") >= 5  # pareto x2, curve, heatmaps, base-new, robustness
    measured, _, published = page.partition(REFERENCE_TITLE)
    assert "83.83" not in measured and "83.83" in published and "Wang et al., CVPR 2022" in published
    assert "PGD ε=4/255 (%)" in page and "AutoAttack ε=4/255 (%)" in page


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="sections are drawn in parallel only with 2+ cores")
def test_sections_drawn_in_parallel_processes_give_the_same_page(monkeypatch):
    import concurrent.futures

    import bench.report.html_report as html_report

    serial = render_page(synthetic_records(), REFERENCES)
    pools = []

    class Recording(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, workers, **kwargs):
            pools.append(workers)
            super().__init__(workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recording)
    monkeypatch.setattr(html_report, "PARALLEL_FROM_RECORDS", 0)  # this small page takes the parallel path too
    assert render_page(synthetic_records(), REFERENCES) == serial
    assert pools == [2]  # two scenarios, two processes


def test_page_shows_the_base_to_new_average_over_scenarios():
    records = [*synthetic_records(),
               record("coop", "b2n_other", "base_to_new", [[0.7, 0.8]], ["base", "new"], trainable=512,
                      flags={"class_names": True})]
    page = render_page(records)
    section = page.partition('<section class="scenario" id="base_to_new_average">')[2].partition("</section>")[0]
    assert section.startswith("<h2>Base-to-new average over 2 scenarios</h2>")
    assert '<a href="#base_to_new_average">base-to-new average</a>' in page
    # coop: base (0.9 + 0.7) / 2 = 0.8, new (0.6 + 0.8) / 2 = 0.7, HM 2 * 0.8 * 0.7 / 1.5 = 0.746667.
    coop = section.partition('<tr data-strategy="coop">')[2].partition("</tr>")[0]
    assert ">80.0</td>" in coop and ">70.0</td>" in coop and ">74.7</td>" in coop and ">2 of 2</td>" in coop
    # cocoop ran on b2n_glyphs only: listed, without averages.
    cocoop = section.partition('<tr data-strategy="cocoop">')[2].partition("</tr>")[0]
    assert ">1 of 2 (missing b2n_other)</td>" in cocoop and ">80.0</td>" not in cocoop
    assert 'id="base_to_new_average"' not in render_page(synthetic_records()[:4])  # no base-to-new cells


def test_leaderboard_command_rebuilds_html_markdown_and_csv(tmp_path):
    store = ResultStore(tmp_path / "results")
    for rec in synthetic_records():
        store.write(rec)
    written = {p.name for p in build_leaderboards(tmp_path / "results", tmp_path / "boards")}
    assert {"index.html", "index.md", "ci3_glyphs.md", "ci3_glyphs.csv", "b2n_glyphs.md",
            "base_to_new_average.md", "base_to_new_average.csv", "robustness.md", "robustness.csv"} <= written
    assert "[robustness.md](robustness.md)" in (tmp_path / "boards" / "index.md").read_text()


# ------------------------------------------------------------------------------------------------ browser
def _browser_ready() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent: install it with `apt-get install -y chromium chromium-driver`"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is absent: install it with `apt-get install -y chromium-driver`"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[test]')"
    return None


needs_browser = pytest.mark.skipif(_browser_ready() is not None, reason=str(_browser_ready()))


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "index.html"
    return write_html(synthetic_records(), path, REFERENCES)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                 "--window-size=1400,2000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield browser
    browser.quit()


@needs_browser
def test_dump_dom_renders_every_expected_row(page, tmp_path):
    dom = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    for name in ("linear_probe", "vpt_shallow", "l2p", "coop", "cocoop", "&lt;script&gt;alert(1)&lt;/script&gt;"):
        assert f'data-strategy="{name}"' in dom, name
    assert "†submitted" in dom and REFERENCE_TITLE in dom


def _column(driver, table, header: str) -> list[str]:
    headers = [th.text.rstrip(" ▲▼") for th in table.find_elements("css selector", "thead th")]
    index = headers.index(header)
    return [row.find_elements("css selector", "td")[index].get_attribute("data-value")
            for row in table.find_elements("css selector", "tbody tr")]


def _strategies(table) -> list[str]:
    return [row.get_attribute("data-strategy") for row in table.find_elements("css selector", "tbody tr")]


@needs_browser
def test_clicking_headers_sorts_rows_and_images_load(page, driver, tmp_path):
    driver.get(page.as_uri())
    table = driver.find_element("css selector", 'table.board[data-scenario="ci3_glyphs"]')
    # Initial order: the headline metric (final accuracy), best first.
    assert _strategies(table) == ["<script>alert(1)</script>", "vpt_shallow", "l2p", "linear_probe"]

    def click(label: str) -> None:
        next(th for th in table.find_elements("css selector", "thead th") if th.text.rstrip(" ▲▼") == label).click()

    click("Trainable params")  # numbers: first click sorts high to low
    assert _strategies(table) == ["l2p", "vpt_shallow", "<script>alert(1)</script>", "linear_probe"]
    click("Trainable params")  # second click reverses
    assert _strategies(table) == ["linear_probe", "<script>alert(1)</script>", "vpt_shallow", "l2p"]
    click("Total (s)")  # l2p has no total time: last in both directions
    assert _strategies(table)[-1] == "l2p"
    values = [float(v) for v in _column(driver, table, "Total (s)")[:-1]]
    assert values == sorted(values, reverse=True)
    click("Total (s)")
    assert _strategies(table)[-1] == "l2p" and _strategies(table)[0] == "linear_probe"
    click("Strategy")  # text: A to Z
    assert _strategies(table) == sorted(_strategies(table), key=str.lower)

    images = driver.find_elements("css selector", "img")
    assert len(images) >= 5
    widths = [driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
              for img in images]
    assert all(isinstance(w, int) and w > 0 for w in widths), widths
    shot = tmp_path / "leaderboard.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("PROMPTSHIFT_SCREENSHOT"):  # to look at: PROMPTSHIFT_SCREENSHOT=/tmp/board.png pytest ...
        shutil.copy(shot, os.environ["PROMPTSHIFT_SCREENSHOT"])


def test_plot_labels_name_strategy_backbone_and_differing_config_never_a_hash():
    from bench.report.html_report import plot_groups

    ci = ["task0", "task1", "task2"]
    matrix = [[0.9, 0.0, 0.0], [0.5, 0.85, 0.0], [0.3, 0.4, 0.8]]
    a = record("linear_probe", "ci3", "class_incremental", matrix, ci, trainable=10)
    b = record("linear_probe", "ci3", "class_incremental", matrix, ci, trainable=10)
    b["config"]["strategy_config"] = {"epochs": 3}
    c = record("l2p", "ci3", "class_incremental", matrix, ci, trainable=10)
    c["config"]["backbone"] = "clip_glyph_tiny"
    assert set(plot_groups([a, b, c])) == {"linear_probe (vit_glyph_tiny) [epochs=1]",
                                           "linear_probe (vit_glyph_tiny) [epochs=3]", "l2p (clip_glyph_tiny)"}
    assert set(plot_groups([a])) == {"linear_probe"}
