"""Legends of output pictures and videos, and the side-by-side composite of the per-clip animations."""

import numpy as np
import pytest
import torch

from blockcopy_core.constants import NUM_CLASSES
from blockcopy_core.pipeline.legend import Legend, Marker, captions, executed_fraction, legend_for, present_classes
from blockcopy_core.pipeline.visualize import CAPTIONS, GRID_NOTE, PANEL_WIDTH, TINT_MARKER, composite

NOTE = "white outline: block executed this frame, the rest copied from the previous frame"


def test_present_classes_are_those_with_a_pixel_and_ignore_is_no_class():
    prediction = np.full((4, 6), 255, np.uint8)
    prediction[0, 0], prediction[3, 5] = 13, 0
    assert present_classes(prediction) == [0, 13]
    assert executed_fraction(torch.tensor([[True, False], [False, False]])) == 0.25


@pytest.mark.parametrize("width", [128, 640, 1280, 2048])
def test_the_legend_lights_the_classes_present_and_dims_the_others(width):
    legend = Legend(width, NOTE, Marker(outline=(255, 255, 255)))
    every = legend.render(np.arange(NUM_CLASSES, dtype=np.uint8)[None])
    none = legend.render(np.full((1, 1), 255, np.uint8))
    frame = legend.render(np.array([[0, 13, 13]], np.uint8))
    assert frame.shape == (legend.height, width, 3) and legend.height % 2 == 0
    assert len(legend.boxes) == NUM_CLASSES
    for index, box in enumerate(legend.boxes):
        assert not np.array_equal(every[box], none[box]), f"class {index}: lit and dimmed look the same"
        np.testing.assert_array_equal(frame[box], (every if index in (0, 13) else none)[box])


def test_the_executed_fraction_is_written_in_its_slot_only():
    legend = Legend(640, NOTE)
    prediction = np.zeros((2, 2), np.uint8)
    blank, half, all_ = (legend.render(prediction, fraction) for fraction in (None, 0.5, 1.0))
    changed = (blank != half).any(2)
    rows, columns = legend.fraction_box
    assert changed.any() and not changed[: rows.start].any() and not changed[:, : columns.start].any()
    assert not np.array_equal(half, all_)


def test_narrow_frames_get_more_rows_and_wide_ones_larger_text():
    assert Legend(128, NOTE).height > Legend(640, NOTE).height
    assert Legend(2048, NOTE).font.size > Legend(640, NOTE).font.size


def test_composite_is_three_captioned_panels_above_the_legend():
    image = np.random.default_rng(0).integers(0, 255, (64, 128, 3), np.uint8)
    prediction = np.zeros((64, 128), np.uint8)
    grid = torch.tensor([[True, False, False, True]])
    picture = composite(image, prediction, grid)
    top = captions(CAPTIONS, 128).shape[0]
    legend = legend_for(3 * 128, GRID_NOTE, TINT_MARKER)
    assert picture.shape == (top + 64 + legend.height, 3 * 128, 3)
    np.testing.assert_array_equal(picture[top : top + 64, :128], image)
    assert (picture[top : top + 64, 128:256] == (128, 64, 128)).all()  # road, in its class colour
    assert composite(image, prediction, None).shape[1] == 2 * 128  # no grid, no third panel


def test_large_frames_are_downscaled_to_panels_of_panel_width():
    picture = composite(np.zeros((1024, 2048, 3), np.uint8), np.zeros((1024, 2048), np.uint8), torch.ones(8, 16) > 0)
    assert picture.shape[1] == 3 * PANEL_WIDTH
