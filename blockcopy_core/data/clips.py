"""Clips, the unit of work: small picklable descriptors and the lazy frame loader that reads them.

A :class:`Clip` names its frames (file paths, or virtual names plus a :class:`SyntheticClipSpec` for the
generator); it never holds pixels, so a Ray driver can ship thousands of them to actors cheaply.
:func:`iter_frames` turns a clip into :class:`Frame` objects one at a time, on the machine that runs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from blockcopy_core.constants import IGNORE_INDEX
from blockcopy_core.labels import label_ids_to_train_ids

if TYPE_CHECKING:
    from blockcopy_core.data.synthetic import SyntheticClipSpec

SOURCES = ("cityscapes", "demo", "synthetic")
DEFAULT_SYNTHETIC_CLIPS = 10


class FrameReadError(RuntimeError):
    """An image or label file could not be read or decoded; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path, self.reason = str(path), reason

    def __reduce__(self) -> tuple:  # picklable, so it can cross from a Ray actor to the driver
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class Clip:
    """An ordered list of frames plus optional labels (``None`` where a frame is unlabelled)."""

    clip_id: str  # unique, stable, human readable
    source: str  # "cityscapes" | "demo" | "synthetic"
    frame_paths: tuple[str, ...]  # synthetic: virtual names like "synthetic/s0_c3/000012"
    label_paths: tuple[str | None, ...]  # synthetic: all None, labels come from the generator
    synthetic: SyntheticClipSpec | None = None
    frame_names: tuple[str, ...] = ()  # names for outputs; empty = file stems (virtual names for synthetic)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"clip {self.clip_id}: unknown source {self.source!r}, expected one of {SOURCES}")
        if not self.frame_paths:
            raise ValueError(f"clip {self.clip_id} has no frames")
        if len(self.label_paths) != len(self.frame_paths):
            raise ValueError(f"clip {self.clip_id}: {len(self.frame_paths)} frames but "
                             f"{len(self.label_paths)} label paths")
        if (self.source == "synthetic") != (self.synthetic is not None):
            raise ValueError(f"clip {self.clip_id}: a synthetic spec goes with (only) the synthetic source")
        if self.synthetic is not None and self.synthetic.num_frames != len(self.frame_paths):
            raise ValueError(f"clip {self.clip_id}: {len(self.frame_paths)} frames but its synthetic spec "
                             f"renders {self.synthetic.num_frames}")
        if not self.frame_names:
            names = self.frame_paths if self.synthetic is not None else [Path(p).stem for p in self.frame_paths]
            object.__setattr__(self, "frame_names", tuple(names))
        elif len(self.frame_names) != len(self.frame_paths):
            raise ValueError(f"clip {self.clip_id}: {len(self.frame_paths)} frames but "
                             f"{len(self.frame_names)} frame names")

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)


@dataclass
class Frame:
    """One loaded frame."""

    name: str  # file stem / virtual name, used for naming outputs
    image: np.ndarray  # HxWx3 uint8 RGB
    label: np.ndarray | None  # HxW uint8 trainIds, 255 = ignore; None when unlabelled


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
        from blockcopy_core.data.synthetic import render_clip  # here: synthetic.py imports this module

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


def build_clips(
    source: str = "synthetic",
    *,
    cityscapes_dir: str | Path | None = None,
    mode: str = "val",
    demo_dir: str | Path | None = None,
    clip_length: int = 20,
    num_clips: int | None = None,
    seed: int = 0,
    height: int = 512,
    width: int = 1024,
    first_clip: int = 0,
) -> list[Clip]:
    """The clip list of a source: clips ``first_clip .. first_clip + num_clips - 1`` (``None`` = all).

    ``first_clip`` lets a caller take disjoint ranges (warm-up clips vs evaluation clips). Synthetic clips are
    ``height`` x ``width``; a synthetic source has no "all", ``num_clips=None`` gives 10 clips.
    """
    # The source modules build Clips, so they import this module; import them here to avoid a cycle.
    from blockcopy_core.data.cityscapes import cityscapes_clips
    from blockcopy_core.data.demo import demo_clips
    from blockcopy_core.data.synthetic import synthetic_clips

    if clip_length < 1:
        raise ValueError(f"clip_length must be >= 1, got {clip_length}")
    if first_clip < 0 or (num_clips is not None and num_clips < 1):
        raise ValueError(f"need first_clip >= 0 and num_clips >= 1, got {first_clip}, {num_clips}")
    if source == "cityscapes":
        if cityscapes_dir is None:
            raise ValueError("the cityscapes source needs cityscapes_dir")
        return cityscapes_clips(cityscapes_dir, mode, clip_length, num_clips, first_clip)
    if source == "demo":
        if demo_dir is None:
            raise ValueError("the demo source needs demo_dir")
        return demo_clips(demo_dir, clip_length, num_clips, first_clip)
    if source == "synthetic":
        count = DEFAULT_SYNTHETIC_CLIPS if num_clips is None else num_clips
        return synthetic_clips(count, clip_length, height, width, seed, first_clip)
    raise ValueError(f"unknown clip source {source!r}, expected one of {SOURCES}")


def select(items: list, num_clips: int | None, first_clip: int, where: str) -> list:
    """``items[first_clip : first_clip + num_clips]``; a clear error when that range is empty."""
    end = None if num_clips is None else first_clip + num_clips
    chosen = items[first_clip:end]
    if not chosen:
        raise ValueError(f"no clips in {where}: {len(items)} available, asked from clip {first_clip}")
    return chosen
