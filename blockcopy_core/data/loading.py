"""Turning a clip descriptor into frames: image and label files are read, synthetic frames rendered.

Loading is lazy (one frame at a time, where the clip is run), so a bad file fails at its frame, not before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from blockcopy_core.constants import IGNORE_INDEX
from blockcopy_core.data.clips import Clip, Frame, FrameReadError
from blockcopy_core.data.scene import render_clip
from blockcopy_core.labels import label_ids_to_train_ids


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; :class:`FrameReadError` naming the file on any failure."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))  # a writable copy
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL's decode failures
        raise FrameReadError(path, f"{type(err).__name__}: {err}") from err


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

    A file that cannot be read raises :class:`FrameReadError` at that frame, not before. A label file that
    is entirely ignore (e.g. the Cityscapes test split) counts as no label.
    """
    if clip.synthetic is not None:
        for name, (image, label) in zip(clip.frame_names, render_clip(clip.synthetic), strict=True):
            yield Frame(name, image, label)
        return
    for name, path, label_path in zip(clip.frame_names, clip.frame_paths, clip.label_paths, strict=True):
        image = load_image(path)
        label = None
        if label_path is not None:
            label = load_train_ids(label_path)
            if label.shape != image.shape[:2]:
                raise FrameReadError(label_path, f"label size {label.shape} differs from the frame's "
                                     f"{image.shape[:2]} ({path})")
            if (label == IGNORE_INDEX).all():
                label = None
        yield Frame(name, image, label)
