"""Checks of a run's setup against its data, made before compute: does the block size fit the frames?"""

from __future__ import annotations

import logging
import math

from ..data import Clip, FrameReadError, iter_frames
from ..data.transforms import target_size
from ..models import TOTAL_STRIDE

log = logging.getLogger("blockcopy")
PADDING_WARNED = 0.25  # warn when padding to the block grid adds more than this share of pixels to compute
SIZES_LISTED = 8


def model_input_size(clip: Clip, res: int | None) -> tuple[int, int] | None:
    """(height, width) of the frames the model sees for ``clip`` (its first frame after ``--res``); None when that
    frame cannot be read (the clip then fails on its own, naming the file)."""
    try:
        frame = next(iter_frames(clip))
    except FrameReadError:
        return None
    return target_size(*frame.image.shape[:2], res)


def check_block_size(block_size: int, size: tuple[int, int]) -> None:
    """Refuse (ValueError, one line naming the valid sizes) a block size SwiftNet cannot use or one larger than the
    frames; warn when padding the frames to the block grid costs much more compute."""
    height, width = size
    valid = list(range(TOTAL_STRIDE, min(size) + 1, TOTAL_STRIDE))
    listed = ", ".join(map(str, valid[:SIZES_LISTED])) + (f", ... {valid[-1]}" if len(valid) > SIZES_LISTED else "")
    if block_size % TOTAL_STRIDE:
        raise ValueError(f"--block-size {block_size}: SwiftNet needs a multiple of its total stride {TOTAL_STRIDE} "
                         f"(for these {height}x{width} frames: {listed or 'none, the frames are too small'})")
    multiple = math.lcm(TOTAL_STRIDE, block_size)
    padded = (-(-height // multiple) * multiple, -(-width // multiple) * multiple)
    extra = padded[0] * padded[1] / (height * width) - 1
    if block_size > min(size):
        raise ValueError(f"--block-size {block_size} is larger than the {height}x{width} frames the model sees: "
                         f"they would be padded to {padded[0]}x{padded[1]} (+{extra:.0%} pixels to compute); use "
                         f"at most {valid[-1] if valid else TOTAL_STRIDE} (valid: {listed})")
    if extra > PADDING_WARNED:
        fitting = [b for b in valid if height % b == 0 and width % b == 0]
        log.warning("--block-size %d pads the %dx%d frames to %dx%d: +%.0f%% pixels to compute%s", block_size,
                    height, width, *padded, 100 * extra,
                    f" ({', '.join(map(str, fitting))} divide them evenly)" if fitting else "")
