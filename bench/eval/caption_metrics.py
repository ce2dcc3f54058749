"""Captioning metrics as the COCO caption evaluation defines them: BLEU-4 and CIDEr-D from `pycocoevalcap`.

The scorers are pycocoevalcap's own (`Bleu(4)`: corpus BLEU with the closest reference length; `Cider`: the
CIDEr-D variant, sigma 6, clipped n-gram counts, idf from the evaluated set's references, x10). Only the
tokenisation differs: the COCO code runs Stanford's PTBTokenizer (Java) with `-lowerCase` and then drops the
punctuation tokens it lists. Java is not part of our default path, so `coco_tokenize` does the same in Python:

- lower-case; one line per caption;
- numbers keep their inner `.`/`,` ("3.5", "1,000"), words keep inner hyphens, apostrophes, `&` and `/`
  ("t-shirt", "o'clock", "at&t");
- clitics split off as PTB does: "don't" -> "do n't", "man's" -> "man 's" ('s 're 've 'll 'd 'm n't);
- every other punctuation character is a token of its own, and the tokens COCO removes (its PUNCTUATIONS list:
  quotes, brackets as -LRB-/-RRB-/-LCB-/-RCB-, . ? ! , : ; - -- ...) are removed.

Known differences from the Java tokenizer, none of which our generated captions contain: PTB keeps the period of
abbreviations ("mr.", "u.s."), where we drop it; PTB turns square brackets into -LSB-/-RSB- (not on COCO's list,
so they survive there), where we drop them; PTB splits "cannot"/"gonna"-style words, which we keep whole.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["COCO_REMOVED_PUNCTUATION", "bleu4", "caption_scores", "cider_d", "coco_tokenize"]

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS, as the characters that produce those PTB tokens.
COCO_REMOVED_PUNCTUATION = frozenset("'`\".?!,:;-()[]{}")

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:[-'&/]\w+)*|\S")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")


def coco_tokenize(caption: str) -> str:
    """`caption` tokenised as the COCO caption evaluation does before scoring (space-joined, lower-case)."""
    tokens: list[str] = []
    for token in _TOKEN.findall(caption.replace("\n", " ").lower()):
        if len(token) == 1 and token in COCO_REMOVED_PUNCTUATION:
            continue
        clitic = _CLITIC.match(token) if "'" in token else None
        tokens.extend(clitic.groups() if clitic else (token,))
    return " ".join(tokens)


def _prepare(references: Mapping[object, Sequence[str]], predictions: Mapping[object, str]
             ) -> tuple[dict, dict]:
    """Tokenised gts/res dicts in pycocoevalcap's input format, after checking the two cover the same items."""
    if set(references) != set(predictions):
        missing = sorted(map(str, set(references) ^ set(predictions)))[:5]
        raise ValueError(f"captions and references must cover the same items; differing ids: {missing}")
    if not references:
        raise ValueError("no captions to score")
    gts, res = {}, {}
    for key, refs in references.items():
        if isinstance(refs, str) or not refs:
            raise ValueError(f"item {key!r}: references must be a non-empty list of captions")
        gts[key] = [coco_tokenize(r) for r in refs]
        res[key] = [coco_tokenize(predictions[key])]
    return gts, res


def bleu4(references: Mapping[object, Sequence[str]], predictions: Mapping[object, str]) -> float:
    """Corpus BLEU-4 of `predictions` (id -> caption) against `references` (id -> captions), in [0, 1]."""
    from pycocoevalcap.bleu.bleu import Bleu

    gts, res = _prepare(references, predictions)
    scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return float(scores[3])


def cider_d(references: Mapping[object, Sequence[str]], predictions: Mapping[object, str]) -> float:
    """CIDEr-D (COCO's "CIDEr") of `predictions` against `references`; 0 to 10 per item, usually reported x100.

    Document frequencies come from the references of the items scored, so a one-image set always scores 0:
    score whole evaluation sets, never single items."""
    from pycocoevalcap.cider.cider import Cider

    gts, res = _prepare(references, predictions)
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def caption_scores(references: Mapping[object, Sequence[str]], predictions: Mapping[object, str]
                   ) -> dict[str, float]:
    """Both official captioning numbers: {"bleu4": ..., "cider": ...}."""
    return {"bleu4": bleu4(references, predictions), "cider": cider_d(references, predictions)}
