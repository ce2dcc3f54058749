"""What can be said about a scene, read off its objects: captions from a small grammar, questions with answers,
entailment hypotheses with labels, and referring expressions with boxes.

Two caption grammars, as OFA pretrains on web captions and is then tuned to COCO's:
- `alt_text_captions`, the pretraining corpus's: five styles that differ in form (a listing, a count, the style, a
  spatial relation, colour-character pairs), like captions gathered from many sources. The scene CoCa is pretrained
  on them (bench.multimodal.pretrain), and the entailment premise is one of them (SNLI-VE's premise is a caption
  from another corpus, Flickr30k's);
- `captions`, the benchmark's reference captions: five annotators following one guideline ("say what each glyph
  is and its colour"), differing in joins and order as COCO's five references do. The benchmark's captioning task
  trains and scores on these: the pretrained model has to adapt its style and read the benchmark's unseen fonts.
  Until SCENES_VERSION 2 the references were the pretraining grammar itself: the untrained start was already the
  pretrained level (about 43 CIDEr-D) and no method moved it beyond the noise of 5 seeds.

Every statement is decided by the scene's objects alone, so each answer and label is correct by construction
(the tests re-derive them). Texts are lower-case and unpunctuated except a final "." in captions, which the COCO
tokenisation drops. Numbers in answers are digits, as VQA's normalised answers are; human answers are ten copies
of the one correct answer (a generated scene has no annotator disagreement).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.eval.understanding_metrics import ENTAILMENT_LABELS  # noqa: F401  (the labels hypotheses carry)
from scenarios.multimodal.scenes import COLOURS, SCENE_CLASSES, Scene, SceneObject, char_answer, object_name

__all__ = ["Hypothesis", "QuestionAnswer", "ReferringExpression", "alt_text_captions", "captions", "hypotheses",
           "questions", "referring_expressions"]

NUMBER_WORDS = ("zero", "one", "two", "three", "four")
STYLE_PHRASES = {"clean": "a clean print", "outline": "an outline sketch", "texture": "a textured picture",
                 "noisy": "a noisy picture"}
HUMANS_PER_QUESTION = 10
# Statements no image can decide: the neutral hypotheses.
UNOBSERVABLE = ("was drawn by a child", "was drawn first", "is somebody's favourite glyph",
                "was printed yesterday")


@dataclass(frozen=True)
class QuestionAnswer:
    question: str
    answers: tuple[str, ...]  # the human answers (HUMANS_PER_QUESTION)
    kind: str  # colour | which | count | count_colour | left_of | exists

    @property
    def answer(self) -> str:
        return self.answers[0]


@dataclass(frozen=True)
class Hypothesis:
    text: str
    label: str  # entailment | neutral | contradiction


@dataclass(frozen=True)
class ReferringExpression:
    text: str
    box: tuple[int, int, int, int]


def _a(obj: SceneObject) -> str:
    article = "an" if obj.colour[0] in "aeiou" else "a"
    return f"{article} {obj.colour} {obj.name}"


def _left_neighbour(scene: Scene, obj: SceneObject) -> SceneObject | None:
    row, col = obj.cell
    return scene.at(row, col - 1) if col > 0 else None


def _pairs_left_of(scene: Scene) -> list[tuple[SceneObject, SceneObject]]:
    """(left, right) neighbours in one row."""
    return [(left, obj) for obj in scene.objects if (left := _left_neighbour(scene, obj)) is not None]


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _listing(objs: tuple[SceneObject, ...]) -> str:
    return _joined([_a(o) for o in objs])


def alt_text_captions(scene: Scene) -> list[str]:
    """The pretraining corpus's five captions of a scene, each in another style (see the module docstring)."""
    objs, n = scene.objects, len(scene.objects)
    pairs = _pairs_left_of(scene)
    if pairs:
        left, right = pairs[0]
        relation = f"{_a(left)} left of {_a(right)}."
    else:  # no row holds two objects: on a 2 x 2 grid that is one object per row ("above": higher up)
        top, below = objs  # reading order
        relation = f"{_a(top)} above {_a(below)}."
    return [
        f"{_listing(objs)}.",
        f"{NUMBER_WORDS[n]} glyphs: " + ", ".join(_a(o) for o in objs) + ".",
        f"{STYLE_PHRASES[scene.domain]} of {_listing(objs)}.",  # names the objects: no content-free reference
        relation,
        " and ".join(f"{o.colour} {o.char}" for o in objs) + ".",
    ]


def captions(scene: Scene) -> list[str]:
    """The benchmark's five reference captions, as COCO has five per image: each names every glyph and its colour
    ("the digit 7 is red"), in reading order, reversed, or column by column, joined by commas or "and"."""
    objs = scene.objects
    said = [f"the {o.name} is {o.colour}" for o in objs]
    by_column = [f"the {o.name} is {o.colour}" for o in sorted(objs, key=lambda o: (o.cell[1], o.cell[0]))]
    return [
        _joined(said) + ".",
        " and ".join(said) + ".",
        _joined(said[::-1]) + ".",
        _joined(by_column) + ".",
        f"{NUMBER_WORDS[len(objs)]} glyphs: " + _joined(said) + ".",
    ]


def questions(scene: Scene) -> list[QuestionAnswer]:
    """Every question of the grammar this scene answers unambiguously, in a fixed order."""
    objs = scene.objects
    present = {o.colour for o in objs}
    absent_colour = next(c for c in COLOURS if c not in present)  # 6 colours, at most 4 objects
    absent_cls = next(c for c in SCENE_CLASSES if c not in {o.cls for o in objs})
    out = [QuestionAnswer("how many glyphs are there?", _humans(str(len(objs))), "count"),
           QuestionAnswer(f"how many {absent_colour} glyphs are there?", _humans("0"), "count_colour"),
           QuestionAnswer(f"is there a {object_name(absent_cls)}?", _humans("no"), "exists")]
    for obj in objs:
        out.append(QuestionAnswer(f"what colour is the {obj.name}?", _humans(obj.colour), "colour"))
        out.append(QuestionAnswer(f"which character is {obj.colour}?", _humans(obj.char), "which"))
        out.append(QuestionAnswer(f"is there a {obj.name}?", _humans("yes"), "exists"))
    for left, right in _pairs_left_of(scene):
        out.append(QuestionAnswer(f"what is left of the {right.name}?", _humans(left.char), "left_of"))
    return out


def _humans(answer: str) -> tuple[str, ...]:
    return (answer,) * HUMANS_PER_QUESTION


def hypotheses(scene: Scene, rng: np.random.Generator) -> list[Hypothesis]:
    """One hypothesis per label (entailment, neutral, contradiction), each drawn from its templates with `rng`."""
    objs, n = scene.objects, len(scene.objects)
    obj = objs[int(rng.integers(n))]
    other_colour = [c for c in COLOURS if c != obj.colour][int(rng.integers(len(COLOURS) - 1))]
    wrong_count = [k for k in range(1, 5) if k != n][int(rng.integers(3))]
    true = [f"there is {_a(obj)}.", f"there are {n} glyphs.", f"the {obj.name} is {obj.colour}."]
    false = [f"the {obj.name} is {other_colour}.", f"there are {wrong_count} glyphs.", f"there is no {obj.name}."]
    pairs = _pairs_left_of(scene)
    if pairs:
        left, right = pairs[int(rng.integers(len(pairs)))]
        true.append(f"the {left.name} is left of the {right.name}.")
        false.append(f"the {right.name} is left of the {left.name}.")
    neutral = f"the {obj.name} {UNOBSERVABLE[int(rng.integers(len(UNOBSERVABLE)))]}."
    return [Hypothesis(true[int(rng.integers(len(true)))], "entailment"),
            Hypothesis(neutral, "neutral"),
            Hypothesis(false[int(rng.integers(len(false)))], "contradiction")]


def referring_expressions(scene: Scene) -> list[ReferringExpression]:
    """Expressions that pick out exactly one object (colours and classes are unique within a scene)."""
    out = []
    for obj in scene.objects:
        out.append(ReferringExpression(f"the {obj.colour} glyph", obj.box))
        out.append(ReferringExpression(f"the {obj.name}", obj.box))
        left = _left_neighbour(scene, obj)
        if left is not None:
            out.append(ReferringExpression(f"the glyph right of the {left.colour} glyph", obj.box))
    return out
