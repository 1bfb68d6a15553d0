"""The video source: video files found, probed and cut into segments, one clip per segment.

A clip's id is ``<video_id>#s<segment>`` (``street#s0003``); a video's id is its file stem, with a short hash
of its path added when two videos of the run share a stem (``street-1a2b3c``). Frames are named
``<video_id>/<frame index in the video>`` (``street/000123``). Video clips have no labels.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from blockcopy_core.data.clips import Clip
from blockcopy_core.data.segments import DEFAULT_SEGMENT_LENGTH, VideoSegment, plan_segments
from blockcopy_core.data.videofiles import VideoInputError, find_videos, probe_video


def video_ids(videos: Sequence[Path]) -> list[str]:
    """Each video's id: its stem, unless another video shares it, then its stem and a hash of its path."""
    stems = Counter(path.stem for path in videos)
    return [path.stem if stems[path.stem] == 1 else f"{path.stem}-{_short_hash(path)}" for path in videos]


def _short_hash(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:6]


def segment_clip(segment: VideoSegment) -> Clip:
    """The clip that runs one segment."""
    names = tuple(segment.frame_name(index) for index in segment.frame_indices)
    return Clip(clip_id=f"{segment.video_id}#s{segment.segment_index:04d}", source="video", frame_paths=names,
                label_paths=(None,) * len(names), video=segment)


def video_clips(
    paths: Sequence[str | Path],
    segment_length: int = DEFAULT_SEGMENT_LENGTH,
    max_frames: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    stride: int = 1,
) -> tuple[list[Clip], list[VideoInputError]]:
    """The clips of every readable video under ``paths``, in order, and the errors of those that are not.

    A path that matches nothing raises :class:`VideoInputError` at once (a typo is no video to record as
    failed); a file that is not a readable video, or selects no frames, is returned among the errors, so a job
    can record that video failed and run the others. ``max_frames``, ``start_s``, ``end_s``, ``stride`` apply to
    each video (:func:`~blockcopy_core.data.segments.plan_segments`).
    """
    videos = find_videos(paths)
    clips, errors = [], []
    for path, video_id in zip(videos, video_ids(videos)):
        try:
            info = probe_video(path)
            segments = plan_segments(info, segment_length, max_frames, start_s, end_s, stride, video_id)
        except VideoInputError as err:
            errors.append(err)
            continue
        clips.extend(segment_clip(segment) for segment in segments)
    return clips, errors
