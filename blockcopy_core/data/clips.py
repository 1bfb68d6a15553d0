"""Clips, the unit of work: small picklable descriptors of frames, and the frame they load into.

A :class:`Clip` names its frames (file paths, or virtual names plus a :class:`SyntheticClipSpec` for the
generator); it never holds pixels, so a Ray driver can ship thousands of them to actors cheaply.
:mod:`~blockcopy_core.data.loading` turns a clip into :class:`Frame` objects on the machine that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blockcopy_core.data.scene.spec import SyntheticClipSpec
from blockcopy_core.data.segments import VideoSegment

SOURCES = ("cityscapes", "demo", "synthetic", "video")


@dataclass(frozen=True)
class Clip:
    """An ordered list of frames plus optional labels (``None`` where a frame is unlabelled)."""

    clip_id: str  # unique, stable, human readable
    source: str  # "cityscapes" | "demo" | "synthetic" | "video"
    frame_paths: tuple[str, ...]  # synthetic, video: virtual names like "synthetic/s0_c3/000012", "street/000123"
    label_paths: tuple[str | None, ...]  # synthetic: all None, labels come from the generator; video: all None
    synthetic: SyntheticClipSpec | None = None
    frame_names: tuple[str, ...] = ()  # names for outputs; empty = file stems (virtual names for synthetic, video)
    video: VideoSegment | None = None  # the segment of a video file the frames are decoded from

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
        if (self.source == "video") != (self.video is not None):
            raise ValueError(f"clip {self.clip_id}: a video segment goes with (only) the video source")
        if self.video is not None and self.video.num_frames != len(self.frame_paths):
            raise ValueError(f"clip {self.clip_id}: {len(self.frame_paths)} frames but its video segment "
                             f"decodes {self.video.num_frames}")
        if not self.frame_names:
            virtual = self.synthetic is not None or self.video is not None
            names = self.frame_paths if virtual else [Path(p).stem for p in self.frame_paths]
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


def select(items: list, num_clips: int | None, first_clip: int, where: str) -> list:
    """``items[first_clip : first_clip + num_clips]``; a clear error when that range is empty."""
    end = None if num_clips is None else first_clip + num_clips
    chosen = items[first_clip:end]
    if not chosen:
        raise ValueError(f"no clips in {where}: {len(items)} available, asked from clip {first_clip}")
    return chosen
