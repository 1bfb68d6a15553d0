"""Cutting a video into segments: consecutive runs of frames that different actors can decode and run.

A :class:`VideoSegment` is a few numbers and a path, so it pickles to a few hundred bytes; frame ``k`` of a
segment is frame ``start_frame + k * stride`` of the video (frames counted from 0 in decode order of time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from blockcopy_core.data.videofiles import VideoInfo, VideoInputError

DEFAULT_SEGMENT_LENGTH = 300
"""Frames per segment: 10 s at 30 fps, so an hour of video makes 360 segments to spread over the actors."""

_EPSILON = 1e-9  # a time given in seconds that lands on a frame (2.0 s at 25 fps: frame 50) selects it


@dataclass(frozen=True)
class VideoSegment:
    """Frames ``start_frame, start_frame + stride, ...`` (``num_frames`` of them) of one video file."""

    path: str
    video_id: str  # unique among the videos of a run; names outputs
    segment_index: int
    num_segments: int  # of this video, so an output knows when the last one is done
    start_frame: int  # index in the video of the segment's first frame
    num_frames: int
    stride: int
    fps: float  # the source's frame rate
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.stride < 1 or self.start_frame < 0:
            raise ValueError(f"segment {self.segment_index} of {self.path}: need num_frames >= 1, stride >= 1 and "
                             f"start_frame >= 0, got {self.num_frames}, {self.stride}, {self.start_frame}")
        if not 0 <= self.segment_index < self.num_segments:
            raise ValueError(f"segment index {self.segment_index} outside 0..{self.num_segments - 1}")

    @property
    def frame_indices(self) -> range:
        """The video frame index of each of the segment's frames."""
        return range(self.start_frame, self.start_frame + self.num_frames * self.stride, self.stride)

    @property
    def output_fps(self) -> float:
        """The frame rate that plays the segment in real time: the source's, divided by the stride."""
        return self.fps / self.stride

    def frame_name(self, video_frame: int) -> str:
        """The frame's name in outputs and reports, e.g. ``street/000123``."""
        return f"{self.video_id}/{video_frame:06d}"


def plan_segments(
    info: VideoInfo,
    segment_length: int = DEFAULT_SEGMENT_LENGTH,
    max_frames: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    stride: int = 1,
    video_id: str | None = None,
) -> list[VideoSegment]:
    """The selected frames of a video cut into consecutive segments of ``segment_length`` (the last may be shorter).

    Selected: frames shown at ``start_s <= t < end_s`` (frame ``i`` is shown at ``i / fps``), every
    ``stride``-th from the first, at most ``max_frames`` of them. ``video_id`` defaults to the file's stem. An
    empty selection is a :class:`VideoInputError` naming the file.
    """
    if segment_length < 1 or stride < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"need segment_length >= 1, stride >= 1 and max_frames >= 1 (or None), got "
                         f"{segment_length}, {stride}, {max_frames}")
    if (start_s is not None and start_s < 0) or (end_s is not None and end_s <= (start_s or 0)):
        raise ValueError(f"need 0 <= start < end (seconds), got start {start_s}, end {end_s}")
    first = 0 if start_s is None else math.ceil(start_s * info.fps - _EPSILON)
    stop = info.num_frames if end_s is None else min(info.num_frames, math.ceil(end_s * info.fps - _EPSILON))
    frames = range(first, stop, stride)[:max_frames]
    if not frames:
        raise VideoInputError(info.path, f"no frames selected: the video has {info.num_frames} frames "
                              f"({info.duration_s:.2f} s at {info.fps:g} fps), asked for frames {first}..{stop - 1}")
    chunks = [frames[i : i + segment_length] for i in range(0, len(frames), segment_length)]
    return [
        VideoSegment(info.path, video_id or Path(info.path).stem, index, len(chunks), chunk.start, len(chunk), stride,
                     info.fps, info.height, info.width)
        for index, chunk in enumerate(chunks)
    ]

