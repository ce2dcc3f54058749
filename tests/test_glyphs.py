"""Tests for scenarios.glyphs and scenarios.cache: class table, fonts, rendering, caching."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from scenarios import cache
from scenarios import glyphs as G

ALL_CLASSES = list(range(len(G.GLYPH_CLASSES)))
# A small but varied slice: digits, capitals, small letters, Greek, symbols.
SOME_CLASSES = [0, 7, 10, 23, 40, 45, 54, 58, 66]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches into its own folder, never the developer's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(folder))
    return folder


# ---------------------------------------------------------------- class table


def test_class_table_size_and_digits_first() -> None:
    assert 60 <= len(G.GLYPH_CLASSES) <= 70
    assert [c.char for c in G.GLYPH_CLASSES[:10]] == [str(d) for d in range(10)]
    assert G.class_names() == [c.name for c in G.GLYPH_CLASSES]


def test_class_chars_and_lowercased_names_are_unique() -> None:
    chars = [c.char for c in G.GLYPH_CLASSES]
    assert len(set(chars)) == len(chars)
    assert all(len(c) == 1 for c in chars)
    lowered = [n.lower() for n in G.class_names()]
    # CLIP-style tokenizers lowercase the prompt, so case must live in words.
    assert len(set(lowered)) == len(lowered)


def test_confusable_groups_keep_at_most_one_member() -> None:
    chars = {c.char for c in G.GLYPH_CLASSES}
    groups = ["0Oo\u039f\u03bf\u0398", "1Il|", "cC", "kK", "pP", "sS", "uU", "vV", "wW", "xX", "zZ", "Y\u03a5"]
    for group in groups:
        assert len(chars & set(group)) <= 1, group


def test_templates_of_different_classes_differ_in_every_font() -> None:
    # Pose-free, size-normalised templates: a near-zero distance means two
    # classes are the same shape (I/l in DejaVu Sans Bold: 0.004). The
    # closest kept pairs differ by one bar (A/Lambda in STIX italic: 0.015,
    # H/Pi, F/Gamma) and were checked by eye.
    for font in G.FONTS:
        t = np.stack([G.glyph_template(font, c).astype(np.float32) / 255 for c in ALL_CLASSES])
        t = t.reshape(len(t), -1)
        dist = np.abs(t[:, None, :] - t[None, :, :]).mean(axis=-1)
        np.fill_diagonal(dist, np.inf)
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        pair = (G.GLYPH_CLASSES[i].char, G.GLYPH_CLASSES[j].char)
        assert dist[i, j] > 0.01, (font, pair, float(dist[i, j]))


def test_template_distance_catches_a_real_look_alike() -> None:
    # Guard the guard: I and l in DejaVu Sans Bold are near-identical.
    ta, tb = (G._template(G._char_mask("DejaVuSans-Bold.ttf", c), 24).astype(np.float32) / 255 for c in "Il")
    assert np.abs(ta - tb).mean() < 0.01


# --------------------------------------------------------------------- fonts


def test_font_split_is_disjoint_and_sized() -> None:
    assert not set(G.PRETRAIN_FONTS) & set(G.BENCH_FONTS)
    assert 10 <= len(G.PRETRAIN_FONTS) <= 14
    assert 5 <= len(G.BENCH_FONTS) <= 6
    assert G.FONTS == G.PRETRAIN_FONTS + G.BENCH_FONTS
    for split in (G.PRETRAIN_FONTS, G.BENCH_FONTS):
        for family in ("DejaVu", "STIX", "cm"):
            assert any(f.startswith(family) for f in split), (family, split)
    for font in G.FONTS:
        assert (G.font_dir() / font).is_file(), font


def test_every_class_has_a_real_glyph_in_every_font() -> None:
    assert G.glyph_problems() == []


def test_missing_glyphs_are_detected() -> None:
    # Computer Modern text faces carry no small Greek letters at all.
    with pytest.raises(ValueError, match="no glyph"):
        G._char_mask("cmr10.ttf", "\u03b1")
    # U+003C is an inverted exclamation mark there, so '<' must be refused...
    assert G._codepoint("cmr10.ttf", "<") is None
    # ...while Gamma is found by glyph name in TeX's encoding, not at U+0393.
    assert G._codepoint("cmr10.ttf", "\u0393") == 0xA1
    assert G._codepoint("DejaVuSans.ttf", "\u0393") == 0x393


# ----------------------------------------------------------------- rendering


def test_shapes_dtypes_and_row_order() -> None:
    fonts = list(G.BENCH_FONTS[:2])
    s = G.render_glyph_set(SOME_CLASSES, fonts, "clean", 3, 0)
    n = len(SOME_CLASSES) * len(fonts) * 3
    assert len(s) == n
    assert s.images.shape == (n, G.IMAGE_SIZE, G.IMAGE_SIZE, 3) and s.images.dtype == np.uint8
    assert s.labels.dtype == np.int64 and s.fonts.dtype == np.int16
    assert s.labels.tolist() == [c for c in SOME_CLASSES for _ in range(2 * 3)]
    assert s.fonts.tolist() == [G.FONTS.index(f) for _ in SOME_CLASSES for f in fonts for _ in range(3)]
    assert set(s.labels.tolist()) == set(SOME_CLASSES)


def test_clean_images_show_a_dark_glyph_on_light_paper() -> None:
    s = G.render_glyph_set(ALL_CLASSES, list(G.BENCH_FONTS), "clean", 1, 3)
    gray = s.images.astype(np.float32).mean(axis=-1)
    border = np.concatenate([gray[:, 0], gray[:, -1], gray[:, :, 0], gray[:, :, -1]], axis=1)
    assert border.min() > 200, "glyphs must never touch the border"
    assert (gray.min(axis=(1, 2)) < 120).all(), "every sample shows ink"
    ink = (gray < 128).mean(axis=(1, 2))
    assert 0.01 < ink.min() and ink.max() < 0.5


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    for domain in G.DOMAINS:
        a = G.render_glyph_set(SOME_CLASSES, ["cmr10.ttf"], domain, 2, 11)
        b = G.render_glyph_set(SOME_CLASSES, ["cmr10.ttf"], domain, 2, 11)
        c = G.render_glyph_set(SOME_CLASSES, ["cmr10.ttf"], domain, 2, 12)
        assert a.images.tobytes() == b.images.tobytes()
        assert not np.array_equal(a.images, c.images)
        np.testing.assert_array_equal(a.labels, c.labels)


def test_samples_of_one_class_and_font_differ() -> None:
    s = G.render_glyph_set([12], ["DejaVuSans.ttf"], "clean", 4, 0)
    for i, j in itertools.combinations(range(4), 2):
        assert not np.array_equal(s.images[i], s.images[j])


def test_subsets_render_the_same_rows_as_the_full_set() -> None:
    fonts = ["STIXGeneral.ttf", "cmss10.ttf", "DejaVuSansMono-Oblique.ttf"]
    full = G.render_glyph_set(SOME_CLASSES, fonts, "texture", 2, 5)
    sub_classes = [SOME_CLASSES[1], SOME_CLASSES[4]]
    sub = G.render_glyph_set(sub_classes, fonts, "texture", 2, 5)
    rows = np.isin(full.labels, sub_classes)
    np.testing.assert_array_equal(sub.images, full.images[rows])
    # A font subset (in another order) reproduces its rows too.
    one = G.render_glyph_set(SOME_CLASSES, [fonts[2]], "texture", 2, 5)
    np.testing.assert_array_equal(one.images, full.images[full.fonts == G.FONTS.index(fonts[2])])


def test_domains_differ_from_clean() -> None:
    fonts = list(G.BENCH_FONTS)
    clean = G.render_glyph_set(SOME_CLASSES, fonts, "clean", 1, 2).images.astype(np.float32)
    for domain in G.DOMAINS[1:]:
        other = G.render_glyph_set(SOME_CLASSES, fonts, domain, 1, 2).images.astype(np.float32)
        assert np.abs(clean - other).mean() > 15, domain


def test_outline_is_hollow_where_strokes_are_thick() -> None:
    # Bold sans strokes are wider than the ring, so the outline has less ink.
    clean = G.render_glyph_set(SOME_CLASSES, ["DejaVuSans-Bold.ttf"], "clean", 2, 0).images
    outline = G.render_glyph_set(SOME_CLASSES, ["DejaVuSans-Bold.ttf"], "outline", 2, 0).images
    assert (outline.mean(axis=-1) < 128).mean() < 0.8 * (clean.mean(axis=-1) < 128).mean()


def test_texture_is_coloured_and_noisy_is_low_contrast() -> None:
    tex = G.render_glyph_set(SOME_CLASSES, ["cmtt10.ttf"], "texture", 2, 0).images.astype(np.int16)
    chroma = (tex.max(axis=-1) - tex.min(axis=-1)).mean()
    assert chroma > 30
    noisy = G.render_glyph_set(SOME_CLASSES, ["cmtt10.ttf"], "noisy", 2, 0).images.astype(np.float32)
    gray = noisy.mean(axis=-1)
    lo, hi = np.percentile(gray, [5, 95], axis=(1, 2))
    assert (hi - lo).max() < 200 and (hi - lo).min() > 40


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"domain": "sketchy"}, "sketchy"),
        ({"fonts": ["Comic.ttf"]}, "Comic.ttf"),
        ({"classes": [0, 999]}, "999"),
        ({"classes": [-1]}, "-1"),
    ],
)
def test_unknown_names_raise_value_error_naming_them(kwargs: dict, bad: str) -> None:
    args = {"classes": [0, 1], "fonts": ["cmr10.ttf"], "domain": "clean", "per_font": 1, "seed": 0}
    args.update(kwargs)
    for fn in (G.render_glyph_set, G.load_glyph_set):
        with pytest.raises(ValueError, match="valid") as err:
            fn(**args)
        assert bad in str(err.value)


def test_unknown_domain_message_lists_valid_domains() -> None:
    with pytest.raises(ValueError) as err:
        G.render_glyph_set([0], ["cmr10.ttf"], "blurry", 1, 0)
    assert all(d in str(err.value) for d in G.DOMAINS)


# --------------------------------------------------------------------- cache


def test_load_glyph_set_hits_the_cache_second_time(monkeypatch: pytest.MonkeyPatch, _private_cache: Path) -> None:
    args = (SOME_CLASSES[:3], ["cmb10.ttf", "DejaVuSerif-Italic.ttf"], "noisy", 2, 4)
    render = G.render_glyph_set
    first = G.load_glyph_set(*args)
    assert len(list(_private_cache.glob("*.npz"))) == 1

    def fail(*_: object) -> None:
        raise AssertionError("render_glyph_set called on a cache hit")

    monkeypatch.setattr(G, "render_glyph_set", fail)
    second = G.load_glyph_set(*args)
    fresh = render(*args)
    for got in (first, second):
        np.testing.assert_array_equal(got.images, fresh.images)
        np.testing.assert_array_equal(got.labels, fresh.labels)
        np.testing.assert_array_equal(got.fonts, fresh.fonts)
        assert got.images.dtype == np.uint8 and got.labels.dtype == np.int64 and got.fonts.dtype == np.int16


def test_cached_arrays_calls_build_once_and_round_trips() -> None:
    calls = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.array([0.5], dtype=np.float64)}

    key = {"kind": "test", "n": 1, "names": ["x", "y"]}
    first = cache.cached_arrays(key, build)
    second = cache.cached_arrays(key, build)
    assert calls == [1]
    for got in (first, second):
        np.testing.assert_array_equal(got["a"], np.arange(6).reshape(2, 3))
        assert got["a"].dtype == np.int32 and got["b"].dtype == np.float64
    # Key order does not matter; content does.
    cache.cached_arrays({"names": ["x", "y"], "n": 1, "kind": "test"}, build)
    assert calls == [1]
    cache.cached_arrays({**key, "n": 2}, build)
    assert calls == [1, 1]


def test_cache_key_includes_data_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache.cache_path({"k": 1})
    monkeypatch.setattr(cache, "DATA_VERSION", cache.DATA_VERSION + 1)
    assert cache.cache_path({"k": 1}) != before


def test_corrupt_cache_file_is_rebuilt(_private_cache: Path) -> None:
    calls = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.arange(100, dtype=np.uint8)}

    key = {"kind": "corrupt"}
    cache.cached_arrays(key, build)
    path = cache.cache_path(key)
    assert path.parent == _private_cache and path.is_file()
    for damage in (b"", b"not a zip file", path.read_bytes()[:40]):
        path.write_bytes(damage)
        got = cache.cached_arrays(key, build)
        np.testing.assert_array_equal(got["x"], np.arange(100, dtype=np.uint8))
        # ...and the rebuilt file is whole again.
        np.testing.assert_array_equal(np.load(path)["x"], np.arange(100, dtype=np.uint8))
    assert len(calls) == 4
    assert not list(_private_cache.glob(".tmp-*")), "no temporaries left behind"


def test_cache_refuses_object_arrays() -> None:
    with pytest.raises(TypeError):
        cache.cached_arrays({"kind": "obj"}, lambda: {"x": np.array([{}, None], dtype=object)})


def test_cache_dir_is_the_override_else_the_user_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("PROMPTSHIFT_CACHE")
    assert cache.cache_dir() == tmp_path / "xdg" / "promptshift"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "promptshift"  # never a folder of the source tree
