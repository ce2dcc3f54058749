"""The HTML page's layout: a compact default view with the other columns behind a box, a first column that stays
in view, base-vs-new labels apart, ablation panels in numeric order, figures drawn at twice their shown size, and
(in headless Chromium) the first column fixed while the table scrolls sideways."""
from __future__ import annotations

import itertools
import re

import pytest

from bench.report.html_report import (DPI, _frame, _png_width, base_new_figure, natural_key, plot_groups, render_page)
from test_html_report import CHROMEDRIVER, CHROMIUM, FLAGS, needs_browser, record, synthetic_records


def _b2n_crowd() -> list[dict]:
    """coop, cocoop and zero-shot CLIP within a point of each other (as in the committed b2n_glyphs table)."""
    rows = [("coop", 0.902, 0.748), ("cocoop", 0.897, 0.752), ("zeroshot_clip", 0.899, 0.745),
            ("kgcoop", 0.905, 0.755), ("maple", 0.93, 0.70)]
    return [record(name, "b2n_glyphs", "base_to_new", [[base, new]], ["base", "new"], trainable=100,
                   flags={"class_names": True}) for name, base, new in rows]


def test_base_to_new_labels_do_not_overlap():
    fig = base_new_figure(_frame(_b2n_crowd()))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = {"coop", "cocoop", "zeroshot_clip", "kgcoop", "maple"}
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts if t.get_text() in labels}
    assert set(boxes) == labels
    for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), f"labels {a} and {b} overlap"
    inside = ax.get_window_extent(renderer)
    assert all(inside.x0 <= box.x0 and box.x1 <= inside.x1 for box in boxes.values())


def test_ablation_panels_are_in_numeric_order():
    matrix = [[0.9, 0.0], [0.5, 0.8]]
    recs = []
    for length in (32, 8, 16):
        rec = record("vpt_shallow", "ci2", "class_incremental", matrix, ["t0", "t1"], trainable=10)
        rec["config"]["strategy_config"] = {"length": length}
        recs.append(rec)
    assert list(plot_groups(recs)) == ["vpt_shallow [length=8]", "vpt_shallow [length=16]", "vpt_shallow [length=32]"]
    assert sorted(["L32", "L8", "L16"], key=natural_key) == ["L8", "L16", "L32"]


def test_tables_open_compact_with_the_rest_behind_a_box_and_figures_at_twice_their_width():
    page = render_page(synthetic_records())
    table = re.search(r'<table class="board" data-scenario="ci3_glyphs">.*?</table>', page).group(0)
    shown = re.findall(r'<th data-type="\w+" data-key="([\w@/.-]+)" scope="col" title="click to sort">', table)
    assert shown[0] == "strategy" and "final_accuracy" in shown and "trainable_params" in shown
    assert "flags" in shown and "seconds" in shown and "forgetting_avalanche" not in shown
    assert 'data-key="forgetting_avalanche"' in table and 'class="extra"' in table
    assert 'class="all-columns"' in page and ".all-columns:not(:checked)~.scroll .extra{display:none}" in page
    assert "position:sticky;left:0" in page
    figures = re.findall(r'<img src="(data:image/png;base64,[^"]+)" width="(\d+)"', page)
    assert figures and all(_png_width(uri) // 2 == int(width) for uri, width in figures) and DPI >= 150


@needs_browser
def test_the_first_column_stays_in_view_when_the_table_scrolls(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    path = tmp_path / "index.html"
    path.write_text(render_page(synthetic_records()), encoding="utf-8")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=700,1200"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        browser.get(path.as_uri())
        section = browser.find_element("css selector", "#scenario-ci3_glyphs")
        section.find_element("css selector", "label").click()  # all columns: wider than the window
        scroll = section.find_element("css selector", ".scroll")
        first = section.find_element("css selector", "tbody tr td:first-child")
        third = section.find_elements("css selector", "tbody tr:first-child td")[2]
        before = (first.rect["x"], third.rect["x"])
        assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", scroll)
        browser.execute_script("arguments[0].scrollLeft = 400", scroll)
        after = (first.rect["x"], third.rect["x"])
        assert after[0] == pytest.approx(before[0], abs=1) and after[1] < before[1] - 100
        browser.execute_script("arguments[0].scrollIntoView()", scroll)
        shot = tmp_path / "sticky.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 5_000
    finally:
        browser.quit()


def test_the_page_links_other_suites_pages_next_to_it(tmp_path):
    from bench.core.store import ResultStore
    from bench.report.leaderboard import build_leaderboards

    (tmp_path / "boards" / "ofa_ablation").mkdir(parents=True)
    (tmp_path / "boards" / "ofa_ablation" / "index.html").write_text("<html></html>")
    store = ResultStore(tmp_path / "results")
    for rec in synthetic_records():
        store.write(rec)
    build_leaderboards(tmp_path / "results", tmp_path / "boards")
    assert '<a href="ofa_ablation/index.html">' in (tmp_path / "boards" / "index.html").read_text()


def test_base_to_new_labels_land_in_the_same_place_however_fast_the_clock_runs(monkeypatch):
    """adjustText stops after a second of moves unless told a count: the picture then depended on the machine's
    speed and load (the committed ofa_ablation page changed from one build to the next). A clock that jumps a
    minute per reading, a machine slowed to a crawl, must not move a label."""
    import adjustText

    def positions() -> dict[str, tuple[float, float]]:
        fig = base_new_figure(_frame(_b2n_crowd()))
        return {t.get_text(): tuple(t.get_position()) for t in fig.axes[0].texts}

    normal = positions()
    clock = itertools.count(step=60.0)
    monkeypatch.setattr(adjustText, "timer", lambda: next(clock))
    assert positions() == normal
