"""The shared data types: decode geometry of on-disk images, lazy views that never decode on select/concat."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bench.core.data import LazyImages, Preprocess, TensorData, TensorRecords


class _Pictures:
    """A record set of given PIL images."""

    def __init__(self, images):
        self.images, self.labels = images, np.arange(len(images), dtype=np.int64)
        self.loads = 0

    def __len__(self):
        return len(self.images)

    def load(self, i):
        self.loads += 1
        return self.images[i]

    def describe(self, i):
        return f"picture {i}"


def _halves(w: int, h: int) -> Image.Image:
    """Left half red, right half blue, a green column at the far left edge."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 2, 0] = 255
    a[:, w // 2:, 2] = 255
    a[:, :2] = (0, 255, 0)
    return Image.fromarray(a, "RGB")


def test_preprocess_resizes_the_shorter_side_and_centre_crops():
    out = Preprocess(size=8, crop_pct=1.0, interpolation="nearest")(_halves(40, 20))
    # 40x20 -> 16x8, centre crop columns 4..11: the green edge is cut away, red | blue stays split in the middle
    assert out.shape == (3, 8, 8) and out.dtype == torch.uint8
    assert out[0, :, :4].min() == 255 and out[2, :, 4:].min() == 255 and out[1].max() == 0
    zoom = Preprocess(size=8, crop_pct=0.5, interpolation="nearest")(_halves(8, 8))
    assert zoom[1].max() == 0  # crop_pct < 1 zooms in even when the image already has the input size
    assert torch.equal(Preprocess(size=8)(_halves(8, 8)), torch.from_numpy(np.array(_halves(8, 8))).permute(2, 0, 1))


def test_lazy_views_decode_only_when_indexed():
    pictures = _Pictures([_halves(12, 12) for _ in range(5)])
    images = LazyImages.of(pictures, range(5), Preprocess(size=6))
    data = TensorData(images, torch.arange(5))
    view = data.subset(torch.tensor([4, 1]))
    both = TensorData.concat([view, data.subset(torch.tensor([0]))])
    assert pictures.loads == 0 and len(both) == 3 and both.labels.tolist() == [4, 1, 0]
    assert both.images[torch.arange(3)].shape == (3, 3, 6, 6) and pictures.loads == 3
    assert both.images.describe(1) == "picture 1"


def test_in_memory_part_joins_a_lazy_concat_without_reencoding():
    pictures = _Pictures([_halves(6, 6)])
    lazy = TensorData(LazyImages.of(pictures, [0], Preprocess(size=6)), torch.tensor([0]))
    memory = TensorData(torch.randint(0, 255, (2, 3, 6, 6), dtype=torch.uint8), torch.tensor([1, 2]))
    joined = TensorData.concat([lazy, memory])
    assert isinstance(joined.images.records[1], TensorRecords)
    assert torch.equal(joined.images[torch.tensor([1, 2])], memory.images)


def test_configure_preprocess_follows_the_backbone():
    from bench.models.backbones import create_backbone
    from scenarios.source_streams import configure_preprocess
    from scenarios.streams import Scenario

    scenario = Scenario("x", "class_incremental", 0, None, [], [], [], [], [], preprocess=Preprocess())
    vit = create_backbone("vit_test_micro")
    configure_preprocess(scenario, vit)
    cfg = vit.encoder.pretrained_cfg
    assert (scenario.preprocess.size, scenario.preprocess.crop_pct) == (32, cfg["crop_pct"])
    configure_preprocess(scenario, create_backbone("clip_test_micro"))
    assert (scenario.preprocess.size, scenario.preprocess.crop_pct, scenario.preprocess.interpolation) == (
        32, 1.0, "bicubic")
