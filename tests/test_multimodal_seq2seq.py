"""OFA-format sequence-to-sequence on a small CoCa: the target-only loss mask, decoding and candidate scoring
against hand-rolled references, and fine-tuning / deep prompts learning the embedded tasks above their untrained
start (with the frozen weights of deep prompting bit-for-bit unchanged)."""
from __future__ import annotations

import pytest
import torch

from bench.multimodal.loop import TrainSettings, evaluate, pixels_of, train
from bench.multimodal.methods import build_method
from bench.multimodal.seq2seq import (DecodeSettings, beam_decode, candidate_scores, encode_examples, greedy_decode,
                                      scene_coca, sequence_loss)
from bench.multimodal.vocab import SceneTokenizer, scene_vocabulary
from scenarios.multimodal.streams import build_split


@pytest.fixture(scope="module")
def tok():
    return SceneTokenizer(scene_vocabulary(scenes=4), 48)


def test_vocabulary_covers_the_grammar_and_round_trips(tok):
    text = 'can image and text1 " a red letter A left of an orange digit 7 " imply text2 " the letter A is red "?'
    assert tok.unk_id not in tok.encode(text)
    assert tok.decode(tok.encode("<bin_0> <bin_999> yes maybe")) == "<bin_0> <bin_999> yes maybe"
    assert tok.encode("ultraviolet") == [tok.unk_id]


def test_loss_mask_covers_the_target_and_end_only(tok):
    ids, mask = encode_examples(tok, ["how many glyphs are there?", "what colour is the digit 7?"], ["3", "green 3"])
    for row, m in zip(ids, mask):
        predicted = row[1:][m.bool()].tolist()  # the tokens the loss asks for
        assert predicted[-1] == tok.eot_token_id
        start = row.tolist().index(tok.answer_id)
        assert predicted[:-1] == row[start + 1:start + len(predicted)].tolist()
    assert tok.decode(ids[1, 1:][mask[1].bool()].tolist()) == "green 3"
    with pytest.raises(ValueError, match="exceed the context"):
        encode_examples(tok, ["what " * 60], ["x"])


def test_greedy_beam_and_candidate_scores_agree_with_the_decoder(tok):
    model = scene_coca(tok, width=32, layers=1, seed=1).eval()
    (ex,) = build_split("vqa", "test", 0, 1, per_scene=1)
    px = pixels_of([ex])
    # Greedy by hand: argmax of the decoder's next-token distribution, twice (special tokens excluded).
    prefix = tok.prefix(ex.instruction)
    ids = list(prefix)
    with torch.no_grad():
        image = model.image_tokens(px)
        for _ in range(2):
            logits = model.model.text_decoder(image, model.text_tokens(torch.tensor([ids])))[0, -1]
            logits[[tok.pad_id, tok.sot_token_id, tok.answer_id]] = float("-inf")
            ids.append(int(logits.argmax()))
    expected = tok.decode(ids[len(prefix):])
    assert greedy_decode(model, px, ex.instruction, max_new_tokens=2) == expected
    assert beam_decode(model, px, ex.instruction, DecodeSettings(1, 2)) == expected
    # Candidate scores: the summed log-probabilities of the answer's tokens and the end token.
    score = candidate_scores(model, px, [ex.instruction], ["yes", "2"])
    with torch.no_grad():
        seq = torch.tensor([prefix + tok.encode("2") + [tok.eot_token_id]])
        logp = model.caption_logits(image, seq).log_softmax(-1)[0]
        manual = sum(float(logp[t - 1, seq[0, t]]) for t in range(len(prefix), seq.shape[1]))
    assert float(score[0, 1]) == pytest.approx(manual, abs=1e-4)
    # Over two tokens (no end token written) greedy's path is among the beam's candidates, so the beam's answer
    # is at least as likely (a beam keeping its worst candidates fails this).
    def path_logp(answer_ids):
        seq = torch.tensor([prefix + answer_ids])
        with torch.no_grad():
            logp = model.caption_logits(image, seq).log_softmax(-1)[0]
        return sum(float(logp[t - 1, seq[0, t]]) for t in range(len(prefix), seq.shape[1]))

    wide_ids = tok.encode(beam_decode(model, px, ex.instruction, DecodeSettings(4, 2)))
    greedy_ids = ids[len(prefix):]
    assert len(wide_ids) == 2 and tok.eot_token_id not in greedy_ids
    assert path_logp(wide_ids) >= path_logp(greedy_ids) - 1e-6
    assert DecodeSettings(4, 2).record() == {"decoding": "beam", "beam_size": 4, "max_new_tokens": 2,
                                             "length_penalty": 0.0}


@pytest.mark.parametrize("kind, steps, lr, max_new, metric, start_below, end_above", [
    ("vqa", 100, 3e-3, 4, "vqa_accuracy", 0.01, 0.2),        # measured 0.0 -> 0.40
    ("entailment", 100, 3e-3, 4, "accuracy", 0.45, 0.55),    # measured 0.30 -> 0.77
    ("caption", 75, 6e-3, 16, "cider", 0.05, 0.3),           # measured CIDEr-D 0.0 -> 0.67 / 0.39 (seeds 0 / 1)
    ("grounding", 75, 6e-3, 5, "grounding_accuracy", 0.07, 0.1),   # measured Acc@0.5 0.03 -> 0.23 / 0.17 (seeds 0 / 1)
])
def test_fine_tuning_beats_the_untrained_start_on_held_out_scenes(tok, kind, steps, lr, max_new, metric,
                                                                  start_below, end_above):
    train_set, test_set = build_split(kind, "train", 0, 40), build_split(kind, "test", 0, 10)
    model = scene_coca(tok, width=32, layers=1)
    settings = DecodeSettings(max_new_tokens=max_new)
    start = evaluate(model, test_set, settings)[metric]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = build_method("finetune")
    method.attach(model)
    train(model, train_set, TrainSettings(steps=steps, lr=lr), method)
    end = evaluate(model, test_set, settings)[metric]
    assert start < start_below and end > end_above, (start, end)
    assert sum(not torch.equal(v, before[k]) for k, v in model.state_dict().items()) > 10


def test_deep_prompts_learn_with_the_model_frozen(tok):
    """On a randomly initialised CoCa, deep prompts lower the training loss but do not reliably beat the held-out
    start (entailment measured 0.33 -> 0.33 / 0.40): prompt tuning needs a pretrained model (from load_scene_coca()
    they do: tests/test_multimodal_method_learning.py). What is checked here: the prompts learn, and nothing else
    moves."""
    train_set = build_split("vqa", "train", 0, 20)
    model = scene_coca(tok, width=32, layers=1)
    before = [p.detach().clone() for p in model.parameters()]  # wrapping attention renames keys, not weights
    probe = list(train_set[:32])
    ids, mask = encode_examples(tok, [e.instruction for e in probe], [e.target for e in probe])

    def probe_loss(method):
        with torch.no_grad(), method.active():
            return float(sequence_loss(model, pixels_of(probe), ids, mask))

    method = build_method("deep_prompt", length=8)
    method.attach(model)
    untrained = probe_loss(method)
    train(model, train_set, TrainSettings(steps=60, lr=3e-2), method)
    assert probe_loss(method) < 0.7 * untrained
    after = list(model.parameters())
    assert len(after) == len(before) and all(torch.equal(a, b) for a, b in zip(after, before))
    # length x (key, value) x width x (2 encoder + 1 unimodal + 1 multimodal decoder layers)
    assert method.trainable_parameter_count == 8 * 2 * 32 * (2 + 1 + 1)
    assert sum(p.numel() for p in method.prompts.parameters()) == method.trainable_parameter_count


def test_bitfit_trains_the_bias_terms_only(tok):
    """BitFit: the training loss drops and only parameters named *bias move (on a random CoCa it does not beat
    the held-out start either: VQA measured 0.0 -> 0.0 after 100 steps)."""
    train_set = build_split("vqa", "train", 0, 20)
    model = scene_coca(tok, width=32, layers=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    probe = list(train_set[:32])
    ids, mask = encode_examples(tok, [e.instruction for e in probe], [e.target for e in probe])
    with torch.no_grad():
        untrained = float(sequence_loss(model, pixels_of(probe), ids, mask))
    with pytest.raises(ValueError, match="not attached"):
        train(model, train_set, TrainSettings(steps=1), build_method("bitfit"))
    method = build_method("bitfit")
    method.attach(model)
    train(model, train_set, TrainSettings(steps=60, lr=1e-2), method)
    with torch.no_grad():
        assert float(sequence_loss(model, pixels_of(probe), ids, mask)) < 0.8 * untrained
    moved = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert moved and all(k.endswith("bias") for k in moved)
