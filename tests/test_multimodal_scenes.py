"""Embedded multimodal scenes: determinism, held-out splits, and every answer, label and box checked against
the scene itself (the image's pixels, or an independent reading of the objects)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from scenarios.multimodal import annotations as A
from scenarios.multimodal.scenes import COLOURS, SCENE_CLASSES, SCENE_SIZE, render_scene
from scenarios.multimodal.streams import build_split, domain_incremental_stream, task_incremental_stream
from scenarios.multimodal.tasks import ENTAILMENT_TARGETS, location_tokens, parse_location_tokens, scene_examples

SCENES = [render_scene(3, "train", i) for i in range(24)]


def test_a_scene_is_a_pure_function_of_its_arguments():
    a, b = render_scene(5, "val", 7, "noisy"), render_scene(5, "val", 7, "noisy")
    assert a.image.tobytes() == b.image.tobytes() and a.objects == b.objects
    assert render_scene(6, "val", 7, "noisy").image.tobytes() != a.image.tobytes()
    # One scene in two styles: the same glyphs, colours and cells, a different finish.
    clean = render_scene(5, "val", 7, "clean")
    assert [(o.cls, o.colour, o.cell) for o in clean.objects] == [(o.cls, o.colour, o.cell) for o in a.objects]
    assert clean.image.tobytes() != a.image.tobytes()
    assert a.image.shape == (SCENE_SIZE, SCENE_SIZE, 3) and a.image.dtype == np.uint8


def test_splits_are_held_out():
    ids, hashes, layouts = {}, {}, {}
    for split in ("train", "val", "test"):
        scenes = [render_scene(0, split, i) for i in range(20)]
        ids[split] = {s.scene_id for s in scenes}
        hashes[split] = {s.image.tobytes() for s in scenes}
        # what the scene shows, not only its pixels (a chance repeat is about 1e-6 per pair of scenes)
        layouts[split] = {tuple((o.cls, o.colour, o.cell) for o in s.objects) for s in scenes}
    for x, y in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not ids[x] & ids[y] and not hashes[x] & hashes[y] and not layouts[x] & layouts[y]


def test_objects_are_distinct_and_their_boxes_and_colours_are_in_the_pixels():
    palette = np.array(list(COLOURS.values()))
    for scene in SCENES:
        objs = scene.objects
        assert 2 <= len(objs) <= 4
        assert len({o.cls for o in objs}) == len({o.colour for o in objs}) == len({o.cell for o in objs}) == len(objs)
        img = scene.image.astype(np.float32) / 255
        background = np.median(img.reshape(-1, 3), axis=0)
        ink = np.abs(img - background).max(axis=2) > 0.25
        inside = np.zeros_like(ink)
        for o in objs:
            x1, y1, x2, y2 = o.box
            inside[y1:y2, x1:x2] = True
            assert 0 <= x1 < x2 <= SCENE_SIZE and 0 <= y1 < y2 <= SCENE_SIZE
            assert x1 // 32 == (x2 - 1) // 32 == o.cell[1] and y1 // 32 == (y2 - 1) // 32 == o.cell[0]
            pixels = img[y1:y2, x1:x2][ink[y1:y2, x1:x2]]
            assert len(pixels) > 10
            nearest = np.argmin(((pixels[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
            assert list(COLOURS)[np.bincount(nearest).argmax()] == o.colour
        assert ink[~inside].sum() <= 3  # no ink outside the boxes (a few anti-aliased edge pixels at most)


def _by_name(scene):
    return {o.name: o for o in scene.objects}


def test_every_answer_is_correct():
    for scene in SCENES:
        names = _by_name(scene)
        for qa in A.questions(scene):
            assert qa.answers == (qa.answer,) * 10
            q = qa.question
            if m := re.fullmatch(r"what colour is the (.+)\?", q):
                assert names[m[1]].colour == qa.answer
            elif m := re.fullmatch(r"which character is (\w+)\?", q):
                (obj,) = [o for o in scene.objects if o.colour == m[1]]
                assert obj.char == qa.answer
            elif q == "how many glyphs are there?":
                assert qa.answer == str(len(scene.objects))
            elif m := re.fullmatch(r"how many (\w+) glyphs are there\?", q):
                assert qa.answer == str(sum(o.colour == m[1] for o in scene.objects))
            elif m := re.fullmatch(r"is there a (.+)\?", q):
                assert qa.answer == ("yes" if m[1] in names else "no")
            elif m := re.fullmatch(r"what is left of the (.+)\?", q):
                right = names[m[1]]
                left = scene.at(right.cell[0], right.cell[1] - 1)
                assert right.cell[1] == 1 and left is not None and left.char == qa.answer
            else:
                pytest.fail(f"question outside the grammar: {q}")


def _truth(scene, text):
    """Decide a hypothesis from the objects alone; None = the image cannot tell."""
    names = _by_name(scene)
    if any(phrase in text for phrase in A.UNOBSERVABLE):
        return None
    if m := re.fullmatch(r"there is an? (\w+) (.+)\.", text):
        return m[2] in names and names[m[2]].colour == m[1]
    if m := re.fullmatch(r"there is no (.+)\.", text):
        return m[1] not in names
    if m := re.fullmatch(r"there are (\d) glyphs\.", text):
        return int(m[1]) == len(scene.objects)
    if m := re.fullmatch(r"the (.+) is left of the (.+)\.", text):
        a, b = names[m[1]], names[m[2]]
        return a.cell[0] == b.cell[0] and a.cell[1] < b.cell[1]
    if m := re.fullmatch(r"the (.+) is (\w+)\.", text):
        return names[m[1]].colour == m[2]
    raise AssertionError(f"hypothesis outside the grammar: {text}")


def test_entailment_labels_follow_from_the_scene():
    labels = []
    for seed, scene in enumerate(SCENES):
        for h in A.hypotheses(scene, np.random.default_rng(seed)):
            expected = {None: "neutral", True: "entailment", False: "contradiction"}[_truth(scene, h.text)]
            assert h.label == expected, h.text
            labels.append(h.label)
    assert sorted(set(labels)) == ["contradiction", "entailment", "neutral"]


def test_referring_expressions_pick_out_one_object():
    for scene in SCENES:
        for ref in A.referring_expressions(scene):
            if m := re.fullmatch(r"the (\w+) glyph", ref.text):
                hits = [o for o in scene.objects if o.colour == m[1]]
            elif m := re.fullmatch(r"the glyph right of the (\w+) glyph", ref.text):
                (left,) = [o for o in scene.objects if o.colour == m[1]]
                hits = [o for o in scene.objects if o.cell == (left.cell[0], left.cell[1] + 1)]
            else:
                hits = [o for o in scene.objects if f"the {o.name}" == ref.text]
            assert len(hits) == 1 and hits[0].box == ref.box, ref.text


def _said(caption: str) -> list[tuple[str, str, str]]:
    """(kind, character, colour) of every "the <kind> <char> is <colour>" in a caption, in order."""
    return re.findall(r"the (letter|digit) (\w) is (\w+)", caption)


def test_captions_say_every_glyph_and_its_colour_in_the_guidelines_orders():
    for scene in SCENES:
        caps = A.captions(scene)
        assert len(caps) == 5
        reading = [tuple(o.name.split()) + (o.colour,) for o in scene.objects]
        by_column = [tuple(o.name.split()) + (o.colour,)
                     for o in sorted(scene.objects, key=lambda o: (o.cell[1], o.cell[0]))]
        assert [_said(c) for c in caps] == [reading, reading, reading[::-1], by_column, reading]
        assert caps[4].startswith(A.NUMBER_WORDS[len(scene.objects)] + " glyphs: ")
        assert all(c.endswith(".") and "  " not in c for c in caps)


def test_the_pretraining_grammar_is_not_the_benchmarks():
    for scene in SCENES:
        alt = A.alt_text_captions(scene)
        assert len(alt) == 5
        for o in scene.objects:
            assert f"{o.colour} {o.name}" in alt[0] and f"{o.colour} {o.char}" in alt[4]
            assert f"{o.colour} {o.name}" in alt[1] and f"{o.colour} {o.name}" in alt[2]
        # no content-free reference: a template caption alone would otherwise score BLEU-4 ~0.7 (measured)
        assert all(sum(c in cap for c in COLOURS) >= 2 for cap in alt)
        assert alt[1].startswith(A.NUMBER_WORDS[len(scene.objects)] + " glyphs")
        # the benchmark's references never repeat a pretraining caption, nor say "<colour> <kind>" as it does
        assert not set(alt) & set(A.captions(scene))
        assert not any(f"{o.colour} {o.name}" in c for o in scene.objects for c in A.captions(scene))


def test_the_entailment_premise_is_a_pretraining_caption_and_captioning_scores_the_references():
    scene = SCENES[0]
    (cap,) = scene_examples(scene, "caption", np.random.default_rng(0))
    assert cap.references == tuple(A.captions(scene)) and cap.target in cap.references
    premise = A.alt_text_captions(scene)[0].rstrip(".")
    assert all(f'text1 " {premise} "' in e.instruction
               for e in scene_examples(scene, "entailment", np.random.default_rng(0)))


def test_ofa_format_examples_and_location_tokens():
    scene = SCENES[0]
    rng = np.random.default_rng(0)
    (cap,) = scene_examples(scene, "caption", rng)
    assert cap.instruction == "what does the image describe?" and cap.target in cap.references
    ent = scene_examples(scene, "entailment", rng)
    assert [e.target for e in ent] == [ENTAILMENT_TARGETS[lab] for lab in ("entailment", "neutral", "contradiction")]
    assert all(e.instruction.startswith('can image and text1 " ') for e in ent)
    for g in scene_examples(scene, "grounding", rng, per_scene=10):
        back = parse_location_tokens(g.target)
        assert np.abs(np.subtract(back, g.box)).max() <= 0.5 * SCENE_SIZE / 999
    assert location_tokens((0, 0, 64, 32)) == "<bin_0> <bin_0> <bin_999> <bin_500>"
    assert parse_location_tokens("<bin_1> <bin_2>") is None
    with pytest.raises(ValueError, match="unknown task kind"):
        scene_examples(scene, "retrieval", rng)


def test_streams_and_splits():
    a = build_split("vqa", "train", 1, 4)
    b = build_split("vqa", "train", 1, 4)
    assert [(e.scene_id, e.instruction, e.target) for e in a] == [(e.scene_id, e.instruction, e.target) for e in b]
    di = domain_incremental_stream("caption", 0, n_train=3, n_val=2, n_test=2)
    assert [e.domain for e in di] == ["clean", "outline", "texture", "noisy"]
    seen = [{x.scene_id for x in e.train} for e in di]
    assert all(not seen[i] & seen[j] for i in range(4) for j in range(i + 1, 4))  # new scenes every step
    assert all({x.scene_id for x in e.test}.isdisjoint({x.scene_id for x in e.train}) for e in di)
    ti = task_incremental_stream(0, n_train=2, n_val=1, n_test=1)
    assert [e.kind for e in ti] == ["caption", "vqa", "entailment"]
    assert {x.kind for x in ti[1].train} == {"vqa"}
    with pytest.raises(ValueError, match="distinct domains"):
        domain_incremental_stream("vqa", 0, domains=["clean"])
    with pytest.raises(ValueError, match="unknown split"):
        build_split("vqa", "dev", 0, 2)
    with pytest.raises(ValueError, match="unknown domain"):
        render_scene(0, "train", 0, "sketch")
    assert set(SCENE_CLASSES) >= {o.cls for s in SCENES for o in s.objects}
