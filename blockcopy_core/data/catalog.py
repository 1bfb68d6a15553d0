"""The clip list of any source by name: the one entry point jobs use to say which clips to run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from blockcopy_core.data.cityscapes import cityscapes_clips
from blockcopy_core.data.clips import SOURCES, Clip, select
from blockcopy_core.data.demo import demo_clips
from blockcopy_core.data.segments import DEFAULT_SEGMENT_LENGTH
from blockcopy_core.data.synthetic import synthetic_clips
from blockcopy_core.data.video import video_clips

DEFAULT_SYNTHETIC_CLIPS = 10


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
    video_paths: Sequence[str | Path] = (),
    segment_length: int = DEFAULT_SEGMENT_LENGTH,
    max_frames: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    stride: int = 1,
) -> list[Clip]:
    """The clip list of a source: clips ``first_clip .. first_clip + num_clips - 1`` (``None`` = all).

    ``first_clip`` lets a caller take disjoint ranges (warm-up clips vs evaluation clips). Synthetic clips are
    ``height`` x ``width``; a synthetic source has no "all", ``num_clips=None`` gives 10 clips. The video source
    makes one clip per segment of ``segment_length`` frames of each video under ``video_paths``, and raises the
    first unreadable video's :class:`~blockcopy_core.data.videofiles.VideoInputError` (``data.video.video_clips``
    returns them instead, to run the readable videos).
    """
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
    if source == "video":
        if not video_paths:
            raise ValueError("the video source needs video_paths")
        clips, errors = video_clips(video_paths, segment_length, max_frames, start_s, end_s, stride)
        if errors:
            raise errors[0]
        return select(clips, num_clips, first_clip, ", ".join(map(str, video_paths)))
    raise ValueError(f"unknown clip source {source!r}, expected one of {SOURCES}")
