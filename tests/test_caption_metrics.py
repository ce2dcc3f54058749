"""COCO caption metrics: our Python tokenisation + pycocoevalcap's scorers against the scorers run directly on
PTB-tokenised text (written out by hand, as the Java PTBTokenizer produces it), plus hand-computed values."""
from __future__ import annotations

import math

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from bench.eval.caption_metrics import bleu4, caption_scores, cider_d, coco_tokenize


@pytest.mark.parametrize("raw, tokens", [
    ("A man riding a horse.", "a man riding a horse"),
    ("Don't look: the man's T-shirt (red) costs 3.5 dollars...", "do n't look the man 's t-shirt red costs 3.5 dollars"),
    ('He said "hi" -- at 1,000 o\'clock!', "he said hi at 1,000 o'clock"),
    ("the dogs' bowl; they're AT&T fans?", "the dogs bowl they 're at&t fans"),
    ("Two  red\nglyphs", "two red glyphs"),
])
def test_tokenisation_matches_ptb_output_with_coco_punctuation_removed(raw, tokens):
    assert coco_tokenize(raw) == tokens


RAW_REFS = {
    1: ["A red capital letter A left of a blue digit 7.", "A red A and a blue 7.", "Two glyphs: a red A, a blue 7."],
    2: ["A green small letter b.", "One green b on a white background."],
    3: ["Three glyphs: a black X, a red 3 and a blue Q.", "A black X left of a red digit 3."],
    4: ["An orange question mark.", "The question mark is orange."],
}
TOKENISED_REFS = {
    1: ["a red capital letter a left of a blue digit 7", "a red a and a blue 7", "two glyphs a red a a blue 7"],
    2: ["a green small letter b", "one green b on a white background"],
    3: ["three glyphs a black x a red 3 and a blue q", "a black x left of a red digit 3"],
    4: ["an orange question mark", "the question mark is orange"],
}
RAW_PRED = {1: "A red letter A left of a blue 7.", 2: "A green letter b!", 3: "Two glyphs: a black X and a red 3.",
            4: "A question mark."}
TOKENISED_PRED = {1: ["a red letter a left of a blue 7"], 2: ["a green letter b"],
                  3: ["two glyphs a black x and a red 3"], 4: ["a question mark"]}


def test_scores_equal_pycocoevalcap_on_ptb_tokenised_text():
    reference_bleu = Bleu(4).compute_score(TOKENISED_REFS, TOKENISED_PRED, verbose=0)[0][3]
    reference_cider = Cider().compute_score(TOKENISED_REFS, TOKENISED_PRED)[0]
    assert {k: [coco_tokenize(r) for r in v] for k, v in RAW_REFS.items()} == TOKENISED_REFS
    scores = caption_scores(RAW_REFS, RAW_PRED)
    assert scores["bleu4"] == pytest.approx(reference_bleu, abs=1e-12)
    assert scores["cider"] == pytest.approx(reference_cider, abs=1e-12)
    assert 0.2 < scores["bleu4"] < 0.9 and 0.5 < scores["cider"] < 5  # a partial match, not a degenerate 0 or 1


def test_cider_d_hand_computed():
    # Image 1: unigram tf-idf vectors (log 2 each) share "a" of two entries -> cosine 1/2; no shared bigram;
    # no 3-/4-grams -> 10 * mean(0.5, 0, 0, 0) = 1.25. Image 2 is exact: unigrams and the bigram give cosine 1,
    # 3-/4-grams 0 -> 10 * 0.5 = 5. Corpus: 3.125.
    assert cider_d({1: ["a c"], 2: ["d e"]}, {1: "a b", 2: "d e"}) == pytest.approx(3.125)
    # Long exact captions with no n-gram shared across images: every order has cosine 1 -> 10.
    assert cider_d({1: ["a b c d e"], 2: ["f g h i j"]}, {1: "a b c d e", 2: "f g h i j"}) == pytest.approx(10.0)
    # One image alone: every n-gram has idf log(1) - log(1) = 0.
    assert cider_d({1: ["a b c d"]}, {1: "a b c d"}) == 0.0


def test_bleu4_hand_computed():
    # Precisions 5/6, 4/5, 3/4, 2/3, equal lengths (no brevity penalty): (1/3)^(1/4).
    assert bleu4({1: ["a b c d e g"]}, {1: "a b c d e f"}) == pytest.approx((1 / 3) ** 0.25, rel=1e-8)
    # Brevity penalty exp(1 - 6/4) with all precisions 1.
    assert bleu4({1: ["a b c d e f"]}, {1: "a b c d"}) == pytest.approx(math.exp(1 - 6 / 4), rel=1e-8)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same items"):
        bleu4({1: ["a"]}, {2: "a"})
    with pytest.raises(ValueError, match="non-empty list"):
        cider_d({1: "a b"}, {1: "a b"})
    with pytest.raises(ValueError, match="no captions"):
        cider_d({}, {})
