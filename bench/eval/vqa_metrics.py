"""VQA accuracy as the official VQA evaluation computes it (GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/
vqaEval.py at a013f00, 2021, "Fixed processing answers bug"; the version the VQAv2 numbers of OFA's era use).

An answer's accuracy is min(#humans who gave it / 3, 1), averaged over the 10 leave-one-out subsets of the 10 human
answers: 1 matching human scores 0.3, 2 score 0.6, 3 score 0.9 (the three subsets missing one of them count 2/3),
4 or more score 1. The normalisation is the official one, quirks included, because published numbers depend on it:

- answers (prediction and humans) are stripped of surrounding whitespace, tabs and newlines becoming spaces;
- only when the humans disagree among themselves are both sides normalised: punctuation, then digits/articles
  (lower-cased words, number words "none".."ten" -> "0".."10", articles a/an/the dropped, apostrophe-less
  contractions restored from the official table); when all humans agree, strings are compared as they are
  (VQAv2's released answers are already normalised, so a lower-case canonical prediction is what a model should
  write);
- punctuation: each mark in the official list is deleted if it touches a space somewhere in the text (or the text
  holds a digit,digit comma), else replaced by a space; then periods not followed by a digit are deleted, at most
  32 of them (the official call passes `re.UNICODE`, 32, as sub's `count`).

The EvalAI challenge server (Cloud-CV/VQA-Challenge) runs a variant with regex-based punctuation rules; its numbers
can differ on unnormalised inputs. Hand-written because no maintained package ships this evaluation.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["CONTRACTIONS", "normalize_answer", "process_digit_article", "process_punctuation", "vqa_accuracy",
           "vqa_item_accuracy"]

_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
          "!")
# The official pattern is "(?!<=\d)(\.)(?!\d)": a look-*ahead* for the two characters "<=" plus a digit, so in
# effect "a period not followed by a digit" (3.5 keeps its point, "dog." loses it).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})

# The official contractions table (120 entries), as "key value" pairs. Keys with a capital never match (the words
# are lower-cased first); they stay so that the table is the official one.
_CONTRACTION_PAIRS = """
aint ain't  arent aren't  cant can't  couldve could've  couldnt couldn't  couldn'tve couldn't've
couldnt've couldn't've  didnt didn't  doesnt doesn't  dont don't  hadnt hadn't  hadnt've hadn't've
hadn'tve hadn't've  hasnt hasn't  havent haven't  hed he'd  hed've he'd've  he'dve he'd've  hes he's  howd how'd
howll how'll  hows how's  Id've I'd've  I'dve I'd've  Im I'm  Ive I've  isnt isn't  itd it'd  itd've it'd've
it'dve it'd've  itll it'll  let's let's  maam ma'am  mightnt mightn't  mightnt've mightn't've
mightn'tve mightn't've  mightve might've  mustnt mustn't  mustve must've  neednt needn't  notve not've
oclock o'clock  oughtnt oughtn't  ow's'at 'ow's'at  'ows'at 'ow's'at  'ow'sat 'ow's'at  shant shan't
shed've she'd've  she'dve she'd've  she's she's  shouldve should've  shouldnt shouldn't
shouldnt've shouldn't've  shouldn'tve shouldn't've  somebody'd somebodyd  somebodyd've somebody'd've
somebody'dve somebody'd've  somebodyll somebody'll  somebodys somebody's  someoned someone'd
someoned've someone'd've  someone'dve someone'd've  someonell someone'll  someones someone's
somethingd something'd  somethingd've something'd've  something'dve something'd've  somethingll something'll
thats that's  thered there'd  thered've there'd've  there'dve there'd've  therere there're  theres there's
theyd they'd  theyd've they'd've  they'dve they'd've  theyll they'll  theyre they're  theyve they've  twas 'twas
wasnt wasn't  wed've we'd've  we'dve we'd've  weve we've  werent weren't  whatll what'll  whatre what're
whats what's  whatve what've  whens when's  whered where'd  wheres where's  whereve where've  whod who'd
whod've who'd've  who'dve who'd've  wholl who'll  whos who's  whove who've  whyll why'll  whyre why're
whys why's  wont won't  wouldve would've  wouldnt wouldn't  wouldnt've wouldn't've  wouldn'tve wouldn't've
yall y'all  yall'll y'all'll  y'allll y'all'll  yall'd've y'all'd've  y'alld've y'all'd've  y'all'dve y'all'd've
youd you'd  youd've you'd've  you'dve you'd've  youll you'll  youre you're  youve you've
"""
_WORDS = _CONTRACTION_PAIRS.split()
CONTRACTIONS: dict[str, str] = dict(zip(_WORDS[0::2], _WORDS[1::2]))


def process_punctuation(text: str) -> str:
    """The official `processPunctuation` (rules in the module docstring)."""
    out = text
    has_digit_comma = _COMMA_STRIP.search(text) is not None
    for mark in _PUNCT:
        if (mark + " " in text or " " + mark in text) or has_digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out, count=int(re.UNICODE))


def process_digit_article(text: str) -> str:
    """The official `processDigitArticle`: lower-case words, number words to digits, no articles, contractions."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_answer(answer: str) -> str:
    """`answer` fully normalised (punctuation, then digits/articles/contractions), as the official evaluation
    compares answers whenever the humans disagree."""
    return process_digit_article(process_punctuation(_strip(answer)))


def _strip(answer: str) -> str:
    return answer.replace("\n", " ").replace("\t", " ").strip()


def vqa_item_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """Accuracy of one answer against the human answers (normally 10): the mean, over each human left out, of
    min(#other humans giving the prediction / 3, 1), after the official normalisation."""
    if isinstance(human_answers, str) or len(human_answers) == 0:
        raise ValueError("human_answers must be a non-empty list of strings")
    humans = [_strip(h) for h in human_answers]
    pred = _strip(prediction)
    if len(set(humans)) > 1:
        humans = [normalize_answer(h) for h in humans]
        pred = normalize_answer(pred)
    matches = sum(h == pred for h in humans)
    # Leaving out a matching human removes one match; leaving out any other keeps them all.
    per_subset = [min(1.0, (matches - (h == pred)) / 3.0) for h in humans]
    return sum(per_subset) / len(per_subset)


def vqa_accuracy(human_answers: Mapping[object, Sequence[str]], predictions: Mapping[object, str]) -> float:
    """Mean VQA accuracy in [0, 1] over questions (id -> human answers; id -> predicted answer). The official tool
    reports 100 x this, rounded to 2 decimals."""
    if set(human_answers) != set(predictions):
        differing = sorted(map(str, set(human_answers) ^ set(predictions)))[:5]
        raise ValueError(f"predictions and annotations must cover the same questions; differing ids: {differing}")
    if not predictions:
        raise ValueError("no answers to score")
    return sum(vqa_item_accuracy(predictions[q], human_answers[q]) for q in predictions) / len(predictions)
