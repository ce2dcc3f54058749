"""Training augmentation: seeded per-image shift and zoom, no flips, nothing drawn when it is off."""
from __future__ import annotations

import pytest
import torch

from bench.train.augment import (MAX_SHIFT_PX, ZOOM_RANGE, apply_shift_scale, augment, augment_generator, check_augment,
                                 draw_shift_scale, shift_scale)


def images(n: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(n, 3, 32, 32)


def test_same_seed_same_views_other_seed_other_views():
    x = images()
    a = shift_scale(x, augment_generator(0))
    assert torch.equal(a, shift_scale(x, augment_generator(0)))
    assert not torch.equal(a, shift_scale(x, augment_generator(1)))
    assert a.shape == x.shape and 0.0 <= a.min() and a.max() <= 1.0


def test_parameters_are_drawn_per_image_and_never_flip():
    # One bright pixel left of centre in every image: each image moves it by its own small shift, never
    # mirrors it to the right half (a flip would turn a 'b' into a 'd').
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 16, 8] = 1.0
    out = shift_scale(x, augment_generator(3))
    flat = out.flatten(1).argmax(1)
    rows, cols = flat // 32, flat % 32
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # not one shift for the whole batch
    reach = MAX_SHIFT_PX + 0.1 * 16 + 1  # shift, plus the zoom's move of a point 8 px from the centre, rounded
    assert (cols - 8).abs().max() <= reach and (rows - 16).abs().max() <= reach
    assert (cols < 16).all()


def test_zoom_one_shift_zero_is_the_identity_and_a_shift_moves_whole_pixels():
    x = images(2)
    one, none = torch.ones(2), torch.zeros(2, 2)
    torch.testing.assert_close(apply_shift_scale(x, one, none), x, atol=1e-6, rtol=0)
    # Two pixels right and one up: interior pixels land exactly there; the border column repeats.
    moved = apply_shift_scale(x, one, torch.tensor([[2.0, -1.0], [2.0, -1.0]]))
    torch.testing.assert_close(moved[..., :-1, 2:], x[..., 1:, :-2], atol=1e-6, rtol=0)
    torch.testing.assert_close(moved[..., :-1, 0], x[..., 1:, 0], atol=1e-6, rtol=0)


def test_parameters_stay_in_their_ranges():
    zoom, shift = draw_shift_scale(1000, augment_generator(0))
    assert ZOOM_RANGE[0] <= zoom.min() and zoom.max() <= ZOOM_RANGE[1]
    assert shift.abs().max() <= MAX_SHIFT_PX and shift.abs().max() > 0.9 * MAX_SHIFT_PX


def test_none_draws_nothing_and_unknown_names_are_refused():
    generator = augment_generator(0)
    state = generator.get_state()
    x = images(2)
    assert augment("none", x, generator) is x
    assert torch.equal(generator.get_state(), state)
    with pytest.raises(ValueError, match="valid: none, shift_scale"):
        check_augment("flip")


def test_rrc_flip_full_box_is_the_identity_or_the_mirror():
    from bench.train.augment import apply_rrc_flip

    x = images(2)
    full = torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 2)
    out = apply_rrc_flip(x, full, torch.tensor([False, True]))
    assert torch.allclose(out[0], x[0], atol=1e-6)
    assert torch.allclose(out[1], x[1].flip(-1), atol=1e-6)


def test_rrc_flip_resizes_the_box_to_the_whole_image():
    from bench.train.augment import apply_rrc_flip

    x = torch.zeros(1, 1, 32, 32)
    x[..., :16, :16], x[..., :16, 16:], x[..., 16:, :16], x[..., 16:, 16:] = 0.1, 0.2, 0.3, 0.4
    top_right = apply_rrc_flip(x, torch.tensor([[0.0, 16.0, 16.0, 16.0]]), torch.tensor([False]))
    assert torch.allclose(top_right[..., :30, 2:], torch.full((1, 1, 30, 30), 0.2), atol=1e-6)  # edges blend


def test_rrc_flip_draws_torchvisions_boxes_per_image_seeded():
    from bench.train.augment import RRC_RATIO, RRC_SCALE, draw_rrc_flip

    boxes, flips = draw_rrc_flip(400, 32, 32, augment_generator(0))
    again, _ = draw_rrc_flip(400, 32, 32, augment_generator(0))
    assert torch.equal(boxes, again)
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    share = h * w / 1024
    assert share.min() >= RRC_SCALE[0] * 0.8 and share.max() <= 1.0  # rounding to whole pixels
    assert (w / h).min() >= RRC_RATIO[0] * 0.8 and (w / h).max() <= RRC_RATIO[1] * 1.25
    assert share.std() > 0.1  # not one box for all
    assert 0.4 < flips.float().mean() < 0.6
    check_augment("rrc_flip")
