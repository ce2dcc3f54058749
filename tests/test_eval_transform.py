"""On-disk images are resized and cropped by the backbone library's own eval transform: pixel for pixel what
timm's `create_transform` and open_clip's `image_transform` give on a real-sized image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.data import Preprocess
from bench.models.backbones import create_backbone, eval_geometry


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 500 x 375 image with smooth gradients and texture (a hand-made stand-in for a photograph)."""
    y, x = np.mgrid[0:375, 0:500]
    noise = np.random.default_rng(0).integers(0, 40, size=(375, 500, 3))
    pixels = np.stack([x * 0.5, y * 0.6, (x + y) * 0.3], axis=-1) + noise + 20 * np.sin(x / 7.0)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def normalised(ours: torch.Tensor, mean, std) -> torch.Tensor:
    mean, std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    return (ours.float() / 255.0 - mean) / std


def test_timm_vit_b16_pixels_equal_timms_create_transform(photo):
    from timm.data import create_transform, resolve_data_config

    backbone = create_backbone("vit_base_patch16_224.augreg_in21k", "none")
    config = resolve_data_config({}, model=backbone.encoder)
    theirs = create_transform(**config, is_training=False)(photo)
    ours = Preprocess(224, config["crop_pct"], config["interpolation"], eval_geometry(backbone))(photo)
    assert ours.dtype == torch.uint8 and ours.shape == (3, 224, 224)
    assert torch.allclose(normalised(ours, config["mean"], config["std"]), theirs, atol=1e-5)
    # The hand-written geometry it replaces resized to 249 where timm floors 224 / 0.9 to 248: not the same pixels.
    hand = Preprocess(224, config["crop_pct"], config["interpolation"])(photo)
    assert (hand.float() - ours.float()).abs().mean() > 1.0


def test_clip_b16_pixels_equal_open_clips_image_transform(photo):
    import open_clip

    backbone = create_backbone("clip_test_micro")
    size = backbone.visual.input_size
    theirs = open_clip.image_transform(size, is_train=False)(photo)
    ours = Preprocess(size, 1.0, "bicubic", eval_geometry(backbone))(photo)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    assert torch.allclose(normalised(ours, mean, std), theirs, atol=1e-5)


def test_a_real_data_scenario_decodes_with_its_backbones_transform(tmp_path, monkeypatch):
    from bench.contract import mini_data
    from scenarios.catalog import build_scenario
    from scenarios.source_streams import configure_preprocess

    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path))
    mini_data.write_image_folder(tmp_path, classes=("a", "b", "c", "d", "e"), per_class=2, size=40)
    scenario = build_scenario("image_folder_ci5", 0)
    backbone = create_backbone("vit_test_micro")
    configure_preprocess(scenario, backbone)
    images = scenario.steps[0].data.images
    expected = eval_geometry(backbone)(images.records[0].load(int(images.rows[0])))
    assert torch.equal(images[torch.tensor([0])][0], torch.from_numpy(np.asarray(expected).transpose(2, 0, 1).copy()))
