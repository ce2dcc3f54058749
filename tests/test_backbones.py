"""Backbones: the uniform ViT view matches the library's own forward; weights load the ordinary way; the compact
tokenizer keeps open_clip's conventions; committed checkpoints are verified."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file

from bench.models import checkpoints
from bench.models.backbones import create_backbone
from bench.models.text import CompactTokenizer


def test_timm_view_matches_timm_forward():
    vit = create_backbone("vit_test_micro").eval()
    x = torch.rand(3, 3, 32, 32)
    expected = vit.encoder(vit.preprocess(x))  # timm's own forward (num_classes=0 -> pooled features)
    assert torch.allclose(vit(x), expected, atol=1e-6)
    assert vit.num_prefix_tokens == 1 and vit.embed(x).shape == (3, 17, 32)


def test_open_clip_view_matches_encode_image():
    clip = create_backbone("clip_test_micro").eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(clip.encode_image(x), clip.model.encode_image(clip.visual.preprocess(x)), atol=1e-6)
    ids = clip.text.tokenize(["a photo of a digit 7."])
    assert torch.allclose(clip.encode_text(["a photo of a digit 7."]), clip.model.encode_text(ids), atol=1e-5)


def test_compact_tokenizer_keeps_end_of_text_as_the_largest_id():
    vocab = CompactTokenizer.build_vocab(["a photo of a digit 7."])
    tok = CompactTokenizer(vocab, context_length=12)
    ids = tok(["a photo of a digit 7.", "unknown words"])
    assert ids.shape == (2, 12)
    assert ids[0, 0] == tok.sot_token_id and ids[0].argmax() == ids[0].tolist().index(tok.eot_token_id)
    assert tok.eot_token_id == tok.vocab_size - 1
    assert 1 in ids[1].tolist()  # unknown tokens map to the unknown id, not to a random word


def test_local_weights_file_loads_through_timm(tmp_path):
    source = create_backbone("vit_test_micro")
    path = tmp_path / "micro.safetensors"
    save_file({k: v.contiguous() for k, v in source.encoder.state_dict().items()}, str(path))
    loaded = create_backbone("vit_test_micro", weights=str(path))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(value, loaded.encoder.state_dict()[key]), key
    with pytest.raises(FileNotFoundError):
        create_backbone("vit_test_micro", weights=str(tmp_path / "missing.safetensors"))


def test_corrupt_committed_checkpoint_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "checkpoints"
    shutil.copytree(checkpoints.CHECKPOINT_DIR, copy)
    target = copy / "vit_glyph_tiny.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", copy)
    with pytest.raises(ValueError, match="corrupt"):
        create_backbone("vit_glyph_tiny")


def test_embedded_vit_loads_verified_weights():
    vit = create_backbone("vit_glyph_tiny")
    assert vit.num_blocks == 6 and vit.embed_dim == 96
    assert vit(torch.rand(1, 3, 32, 32)).shape == (1, 96)


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(KeyError, match="vit_glyph_tiny"):
        create_backbone("vit_glyph_tiy")


def test_coca_view_matches_open_clip_coca_forward():
    coca = create_backbone("coca_test_micro").eval()
    x = torch.rand(2, 3, 32, 32)
    ids = coca.tokenize(["a photo of a digit 7.", "digit 1."])
    with torch.no_grad():
        ours = coca.caption_logits(coca.image_tokens(x), ids)
        theirs = coca.model(coca.visual.preprocess(x), ids)["logits"]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert len(coca.decoder_blocks) == len(coca.model.text.transformer.resblocks) + \
        len(coca.model.text_decoder.resblocks)


def test_fresh_coca_decoder_projection_is_initialised():
    """open_clip leaves a new CoCa's decoder projection as torch.empty; ours draws it from N(0, width^-1/2)."""
    torch.manual_seed(0)
    proj = create_backbone("coca_test_micro").model.text_decoder.text_projection
    assert torch.isfinite(proj).all()
    assert abs(proj.std().item() - proj.shape[0] ** -0.5) < 0.05


def test_compact_tokenizer_decodes_what_it_encodes():
    vocab = CompactTokenizer.build_vocab(["a photo of a digit 7."])
    tok = CompactTokenizer(vocab, context_length=12)
    ids = tok(["a photo of a digit 7."])[0].tolist()
    assert tok.decode(ids[1:]) == "a photo of a digit 7 ."  # stops at end-of-text, drops padding


def test_embedded_coca_loads_verified_weights_and_reads_a_glyph_caption():
    coca = create_backbone("coca_glyph_tiny").eval()
    ids = coca.tokenize(["digit 7."])
    with torch.no_grad():
        logits = coca.caption_logits(coca.image_tokens(torch.rand(1, 3, 32, 32)), ids)
    assert logits.shape == (1, ids.shape[1] - 1, coca.tokenizer.vocab_size)


def test_missing_checkpoint_names_the_installed_command(tmp_path, monkeypatch):
    """An installed user has `promptshift`, not the checkout's run_bench.py: the message must not send them there."""
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="promptshift pretrain") as error:
        create_backbone("vit_glyph_tiny")
    assert "run_bench" not in str(error.value) and str(tmp_path) in str(error.value)
