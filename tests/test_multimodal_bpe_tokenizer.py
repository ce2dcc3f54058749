"""open_clip's BPE behind the seq2seq tokenizer interface (bench/multimodal/bpe_tokenizer.py): CoCa's own ids, text
round-trips as written, the instruction / separator / answer layout `encode_examples` trains on, and OFA's location
tokens refused."""
from __future__ import annotations

import pytest
import torch

from bench.multimodal.bpe_tokenizer import ANSWER_PIECE, BpeSeq2SeqTokenizer
from bench.multimodal.seq2seq import encode_examples


@pytest.fixture(scope="module")
def tok() -> BpeSeq2SeqTokenizer:
    return BpeSeq2SeqTokenizer()


def test_ids_are_cocas_own(tok):
    from open_clip import get_model_config

    text = get_model_config("coca_ViT-B-32")["text_cfg"]
    assert (tok.vocab_size, tok.context_length) == (text["vocab_size"], text["context_length"]) == (49408, 76)
    assert (tok.sot_token_id, tok.eot_token_id, tok.pad_id) == (49406, 49407, 0)
    # the separator is one existing piece, not a special id and not padding
    assert tok.encode(ANSWER_PIECE) == [tok.answer_id] and tok.answer_id not in (0, 49406, 49407)


@pytest.mark.parametrize("text", ["a man riding a wave on top of a surfboard.", "10:30", "yes", "maybe", "no",
                                  "there are 10 people, 2 dogs and a t-shirt.",
                                  "the man's hat (red) isn't 100% blue/white!"])
def test_text_round_trips_as_written(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_decode_stops_at_the_end_and_drops_start_pad_and_separator(tok):
    ids = [tok.sot_token_id, *tok.encode("two dogs"), tok.answer_id, tok.pad_id, tok.eot_token_id,
           *tok.encode("never read")]
    assert tok.decode(ids) == "two dogs"


def test_the_prefix_and_answer_layout_is_what_encode_examples_trains_on(tok):
    instruction, target = "what colour is the cat?", "black"
    prefix = tok.prefix(instruction)
    assert prefix == [tok.sot_token_id, *tok.encode(instruction), tok.answer_id]
    ids, mask = encode_examples(tok, [instruction, "what does the image describe?"], [target, "a cat on a mat."])
    answer = tok.encode(target) + [tok.eot_token_id]
    row = prefix + answer
    assert ids[0, :len(row)].tolist() == row and not ids[0, len(row):].any()  # right-padded with the pad id
    # position t predicts ids[t + 1]: the loss reads exactly the answer and its end token
    predicted = ids[0, 1:][mask[0].bool()].tolist()
    assert predicted == answer and mask[0].sum() == len(answer)
    assert tok.decode(ids[0, len(prefix):].tolist()) == target


def test_the_call_pads_rows_as_open_clip_does(tok):
    rows = tok(["a cat", "a dog on a mat"])
    assert rows.shape == (2, 76) and rows.dtype == torch.long
    assert rows[0, :4].tolist() == [tok.sot_token_id, *tok.encode("a cat"), tok.eot_token_id]


def test_location_tokens_are_refused(tok):
    with pytest.raises(ValueError, match="location tokens"):
        tok.encode("<bin_12> <bin_40> <bin_300> <bin_766>")
