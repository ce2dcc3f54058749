"""The sequence-to-sequence methods (bench.multimodal.methods, strategies/seq2seq/): the registry and its errors,
what each method trains (hand-counted), frozen weights bit-for-bit unchanged after training, zero-initialised
methods starting as the bare model."""
from __future__ import annotations

import pytest
import torch

from bench.core.registry import UnknownNameError
from bench.multimodal.loop import TrainSettings, example_batch_loss, train
from bench.multimodal.methods import SEQ2SEQ_METHODS, Seq2SeqMethod, build_method, method_names
from bench.multimodal.seq2seq import scene_coca
from bench.multimodal.vocab import SceneTokenizer, scene_vocabulary
from scenarios.multimodal.streams import build_split

WIDTH, RANK, LENGTH = 32, 4, 8
# scene_coca(width=32, layers=1): 2 image-encoder blocks; decoder: 1 unimodal text block, 1 multimodal
# self-attention block, 1 cross-attention block; every block width 32 with an MLP of 4 x 32.
BLOCKS = 2 + 1 + 1 + 1
FROZEN_METHODS = {
    # name, params, trainable scalars counted by hand
    "adapter": ({"reduction": 8}, BLOCKS * 2 * (WIDTH * 4 + 4 + 4 * WIDTH + WIDTH)),  # 2 sites, bottleneck 32->4->32
    # LoRA r (in + out) per weight: in_proj 32->96, out_proj 32->32, c_fc 32->128, c_proj 128->32: 16 r d per block
    "lora": ({"rank": RANK, "targets": "attn+mlp"}, BLOCKS * 16 * RANK * WIDTH),
    "input_prompt": ({"length": LENGTH}, LENGTH * WIDTH),
    "deep_prompt": ({"length": LENGTH}, LENGTH * 2 * WIDTH * (2 + 1 + 1)),  # self-attention layers only
}


@pytest.fixture(scope="module")
def tok():
    return SceneTokenizer(scene_vocabulary(scenes=4), 48)


@pytest.fixture(scope="module")
def train_set():
    return build_split("vqa", "train", 0, 8)


def test_every_method_is_registered_and_bad_names_are_one_line_errors():
    assert set(method_names()) >= {"finetune", "bitfit", "deep_prompt", "adapter", "lora", "input_prompt"}
    with pytest.raises(UnknownNameError, match="did you mean 'lora'|Did you mean 'lora'"):
        build_method("lorra")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['rnk'\]; valid: alpha, rank, stacks, targets"):
        build_method("lora", rnk=2)
    with pytest.raises(ValueError, match="unknown targets"):
        build_method("lora", targets="qkv")
    method: Seq2SeqMethod = build_method("adapter")
    assert all(callable(getattr(method, f)) for f in ("attach", "active", "trainable_parameters", "is_attached_to"))
    assert build_method("deep_prompt", length=4, reparam=True).config == {
        "method": "deep_prompt", "length": 4, "depth": 0, "reparam": True, "init_std": 0.02}
    assert SEQ2SEQ_METHODS.get("lora").name == "lora"


@pytest.mark.parametrize("name", sorted(FROZEN_METHODS))
def test_frozen_weights_stay_bit_for_bit_and_only_the_method_trains(tok, train_set, name):
    params, expected = FROZEN_METHODS[name]
    model = scene_coca(tok, width=WIDTH, layers=1)
    own = list(model.parameters())
    before = [p.detach().clone() for p in own]
    method = build_method(name, **params)
    with pytest.raises(RuntimeError, match="not attached"):
        method.trainable_parameters()
    trained = method.attach(model)
    assert method.trainable_parameter_count == expected == sum(p.numel() for p in trained)
    assert not {id(p) for p in trained} & {id(p) for p in own}
    start = [p.detach().clone() for p in trained]
    train(model, train_set, TrainSettings(steps=3, batch_size=4, lr=1e-2), method)
    # The backbone still runs on its own parameter objects, unchanged bit for bit.
    assert {id(p) for p in own} <= {id(p) for p in model.parameters()}
    assert all(torch.equal(p, b) for p, b in zip(own, before))
    assert all(not p.requires_grad for p in own)
    assert any(not torch.equal(p, s) for p, s in zip(trained, start))
    with pytest.raises(RuntimeError, match="already attached"):
        method.attach(model)


@pytest.mark.parametrize("name", ["adapter", "lora"])
def test_zero_initialised_methods_start_as_the_bare_model(tok, train_set, name):
    model = scene_coca(tok, width=WIDTH, layers=1).eval()
    batch = list(train_set[:6])
    with torch.no_grad():
        bare = float(example_batch_loss(model, batch))
        method = build_method(name, **FROZEN_METHODS[name][0])
        method.attach(model)
        with method.active():
            attached = float(example_batch_loss(model, batch))
    assert attached == pytest.approx(bare, abs=1e-5)


def test_input_prompts_reach_the_decoder_only_through_the_image_tokens(tok, train_set):
    """The prompt tokens enter at the image encoder's input: the image tokens change, the text tower's do not."""
    model = scene_coca(tok, width=WIDTH, layers=1).eval()
    px = torch.rand(2, 3, 64, 64)
    ids = model.tokenizer(["what colour is the digit 7?"] * 2)
    with torch.no_grad():
        image, text = model.image_tokens(px), model.text_tokens(ids)
        method = build_method("input_prompt", length=LENGTH)
        method.attach(model)
        tokens_in = []
        hook = model.visual.blocks[1].register_forward_pre_hook(lambda _m, a: tokens_in.append(a[0].shape[1]))
        prompted_image, prompted_text = model.image_tokens(px), model.text_tokens(ids)
        hook.remove()
    assert tokens_in == [1 + 16 + LENGTH]  # class token, 4 x 4 patches, the prompts
    assert not torch.allclose(prompted_image, image) and torch.allclose(prompted_text, text, atol=1e-6)


def test_bitfit_and_finetune_count_what_they_train(tok):
    model = scene_coca(tok, width=WIDTH, layers=1)
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    method = build_method("bitfit")
    method.attach(model)
    assert method.trainable_parameter_count == biases
    other = scene_coca(tok, width=WIDTH, layers=1)
    full = build_method("finetune")
    full.attach(other)
    assert full.trainable_parameter_count == sum(p.numel() for p in other.parameters())
