"""The disk cache of the HTML page's scenario sections (bench/report/section_cache.py): a rebuild from unchanged
records draws nothing and writes the same page; a changed record, changed code or a damaged file draws again."""
from __future__ import annotations

import copy

import pytest

import bench.report.html_report as html_report
import bench.report.section_cache as section_cache
from bench.report.html_report import render_page, write_html
from test_html_report import synthetic_records


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """The scenarios whose sections were drawn (not read back), in a cache folder of this test's own."""
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    names: list[str] = []
    real = html_report._section

    def counting(job):
        names.append(job[0])
        return real(job)

    monkeypatch.setattr(html_report, "_section", counting)
    return names


def test_an_unchanged_rebuild_draws_nothing_and_writes_the_same_page(drawn, tmp_path):
    records = synthetic_records()
    first = write_html(records, tmp_path / "a" / "index.html", references=[]).read_text()
    scenarios = sorted(set(drawn))
    assert len(scenarios) >= 2 and len(list((tmp_path / "cache" / "report_sections").glob("*.html"))) == len(scenarios)
    drawn.clear()
    again = write_html(records, tmp_path / "b" / "index.html", references=[]).read_text()
    assert drawn == [] and again == first
    assert again == render_page(records, [], related=[])  # what a fresh drawing gives, byte for byte
    assert drawn == scenarios  # render_page draws unless asked to read the cache


def test_a_changed_record_redraws_its_scenario_only(drawn, tmp_path):
    records = synthetic_records()
    write_html(records, tmp_path / "a" / "index.html", references=[])
    changed = copy.deepcopy(records)
    target = changed[0]
    target["results"]["acc_matrix"][-1][0] = 0.31  # one number of one cell
    drawn.clear()
    page = write_html(changed, tmp_path / "b" / "index.html", references=[]).read_text()
    assert drawn == [target["scenario"]["name"]]
    assert page == render_page(changed, [], related=[])


def test_changed_code_or_a_damaged_file_is_drawn_again(drawn, tmp_path, monkeypatch):
    records = synthetic_records()
    write_html(records, tmp_path / "a" / "index.html", references=[])
    scenarios = sorted(set(drawn))
    for path in (tmp_path / "cache" / "report_sections").glob("*.html"):
        path.write_bytes(b"\xff\xfe not utf-8 \x80")
    drawn.clear()
    write_html(records, tmp_path / "b" / "index.html", references=[])
    assert sorted(drawn) == scenarios  # unreadable: drawn again
    monkeypatch.setattr(section_cache, "_code_digest", lambda: "other code")
    drawn.clear()
    write_html(records, tmp_path / "c" / "index.html", references=[])
    assert sorted(drawn) == scenarios


def test_the_cache_keeps_only_the_newest_sections(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path))
    monkeypatch.setattr(section_cache, "MAX_SECTIONS", 2)
    for age, key in enumerate(["c", "b", "a"]):  # "a" written last
        section_cache.write_section(key, f"<section>{key}</section>")
        os.utime(tmp_path / "report_sections" / f"{key}.html", (1_000 + age, 1_000 + age))
    section_cache.write_section("d", "<section>d</section>")
    assert sorted(p.stem for p in (tmp_path / "report_sections").glob("*.html")) == ["a", "d"]
    assert section_cache.read_section("d") == "<section>d</section>" and section_cache.read_section("c") is None
