"""Turning a clip descriptor into frames: image and label files are read, synthetic frames rendered, videos decoded.

Loading is lazy (one frame at a time, where the clip is run), so a bad file fails at its frame, not before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from blockcopy_core.constants import IGNORE_INDEX
from blockcopy_core.data.clips import Clip, Frame
from blockcopy_core.data.decode import iter_video_frames
from blockcopy_core.data.errors import FrameReadError
from blockcopy_core.data.scene import render_clip
from blockcopy_core.labels import label_ids_to_train_ids

GREY_16_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
"""PIL's modes of 16-bit grey images (PNG opens as "I;16"; "I", 32-bit, as older PIL opened such PNGs)."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; :class:`FrameReadError` naming the file on any failure.

    Every mode is converted on purpose (docs/data.md, "Image modes"): 16-bit grey is scaled to 8 bits (PIL's
    own conversion would clip it to white), grey replicated, palettes looked up, CMYK by PIL's formula, and
    alpha dropped.
    """
    try:
        with Image.open(path) as image:
            return to_rgb(image, path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL's decode failures
        raise FrameReadError(path, f"{type(err).__name__}: {err}") from err


def to_rgb(image: Image.Image, path: str | Path) -> np.ndarray:
    """``image`` as a new HxWx3 uint8 RGB array (``path`` only names it in errors)."""
    if image.mode in GREY_16_BIT:
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:  # only mode "I" can hold such values
            raise FrameReadError(path, f"mode {image.mode} values {values.min()}..{values.max()} lie outside "
                                 "16-bit grey's 0..65535")
        grey = ((values + 128) // 257).astype(np.uint8)  # 0..65535 -> 0..255, rounded
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # PIL warns when a palette with transparency goes straight to RGB
    return np.array(image.convert("RGB"))


def load_train_ids(label_ids_path: str | Path) -> np.ndarray:
    """Read a Cityscapes ``*_gtFine_labelIds.png`` as HxW uint8 trainIds (255 = ignore)."""
    try:
        with Image.open(label_ids_path) as image:
            ids = np.array(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise FrameReadError(label_ids_path, f"{type(err).__name__}: {err}") from err
    if ids.ndim != 2:
        raise FrameReadError(label_ids_path, f"a labelIds image has one channel, this one has shape {ids.shape}")
    return label_ids_to_train_ids(ids)  # ids beyond 255 (16/32-bit PNGs) are not Cityscapes classes either


def iter_frames(clip: Clip) -> Iterator[Frame]:
    """Yield the clip's frames in order, loading (or generating) each only when it is reached.

    A file that cannot be read, or a frame of another size than the clip's first, raises
    :class:`FrameReadError` at that frame, not before (frame state carries over from one frame to the next, so
    a clip keeps one size). A label file that is entirely ignore (e.g. the Cityscapes test split) counts as no
    label.
    """
    if clip.synthetic is not None:
        for name, (image, label) in zip(clip.frame_names, render_clip(clip.synthetic), strict=True):
            yield Frame(name, image, label)
        return
    if clip.video is not None:
        for name, (_, image) in zip(clip.frame_names, iter_video_frames(clip.video), strict=True):
            yield Frame(name, image, None)
        return
    first_size = None
    for name, path, label_path in zip(clip.frame_names, clip.frame_paths, clip.label_paths, strict=True):
        image = load_image(path)
        size = image.shape[:2]
        first_size = first_size or size
        if size != first_size:
            raise FrameReadError(path, f"frame size {size[0]}x{size[1]} (height x width) differs from the clip's "
                                 f"first frame, {first_size[0]}x{first_size[1]} ({clip.frame_paths[0]})")
        label = None
        if label_path is not None:
            label = load_train_ids(label_path)
            if label.shape != image.shape[:2]:
                raise FrameReadError(label_path, f"label size {label.shape} differs from the frame's "
                                     f"{image.shape[:2]} ({path})")
            if (label == IGNORE_INDEX).all():
                label = None
        yield Frame(name, image, label)
