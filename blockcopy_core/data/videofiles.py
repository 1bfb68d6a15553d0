"""Video files as input: finding them (files, folders, globs) and probing each one's stream with PyAV.

Probing opens the container, reads the first video stream's frame rate, frame count, size and codec, and
decodes its first frame, so a file that is not a video, is empty, has no video stream or a codec this FFmpeg
cannot decode is refused here, with the file named, before any work is planned.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
from natsort import natsorted

from blockcopy_core.data.errors import VideoInputError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class VideoInfo:
    """What planning needs to know of a video file's first video stream."""

    path: str
    fps: float  # average frame rate
    num_frames: int  # from the container, or counted from the packets where it does not say (see _count_frames)
    width: int
    height: int
    codec: str  # FFmpeg's decoder name, e.g. "h264"
    duration_s: float


def _is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def find_videos(paths: Sequence[str | Path]) -> list[Path]:
    """The video files named by ``paths``, in the order given, each file once.

    A file is taken whatever its extension (probing decides whether it is a video); a folder gives every
    file with a video extension (``VIDEO_EXTENSIONS``, any case) below it, in natural sort order of the relative
    path; a pattern with ``*``, ``?`` or ``[`` is a glob (``**`` recursive) keeping the video files it matches,
    natural-sorted. A path that matches nothing, or a folder without videos, is a :class:`VideoInputError`.
    """
    if not paths:
        raise VideoInputError("(no path)", "no video paths given")
    found: dict[Path, None] = {}  # insertion-ordered set
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            videos = natsorted((p for p in path.rglob("*") if _is_video_file(p)),
                               key=lambda p: p.relative_to(path).as_posix())
            if not videos:
                raise VideoInputError(path, f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in this folder")
        elif path.is_file():
            videos = [path]
        elif _GLOB_CHARS & set(str(raw)):
            videos = natsorted(p for p in map(Path, glob.glob(str(raw), recursive=True)) if _is_video_file(p))
            if not videos:
                raise VideoInputError(raw, f"the pattern matches no video file ({', '.join(VIDEO_EXTENSIONS)})")
        else:
            raise VideoInputError(path, "no such file or folder")
        found.update(dict.fromkeys(videos))
    return list(found)


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video file's stream facts and decode its first frame; :class:`VideoInputError` if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise VideoInputError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoInputError(path, "the file is empty")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise VideoInputError(path, f"no video stream (streams: {', '.join(kinds)})")
            stream = container.streams.video[0]
            codec = _decoder_name(stream, path)
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoInputError(path, f"the {codec} video stream has no decodable frame")
            fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
            if fps <= 0:
                raise VideoInputError(path, "the video stream states no frame rate")
            duration = _duration_s(container, stream)
            num_frames = stream.frames or _count_frames(path, duration * fps)
            duration = duration or num_frames / fps
            return VideoInfo(str(path), fps, num_frames, first.width, first.height, codec, duration)
    except av.FFmpegError as err:
        raise VideoInputError(path, f"not a readable video ({type(err).__name__}: {err})") from err


def _decoder_name(stream: av.video.stream.VideoStream, path: Path) -> str:
    """The stream's decoder, or a :class:`VideoInputError` when this FFmpeg build has none for its codec."""
    try:
        context = stream.codec_context
    except av.FFmpegError as err:
        raise VideoInputError(path, f"unsupported video codec ({err})") from err
    if context is None or context.codec is None:
        raise VideoInputError(path, "unsupported video codec: this FFmpeg build has no decoder for it")
    return context.codec.name


def _count_frames(path: Path, stated: float) -> int:
    """Count the first video stream's packets (demuxing only, no decoding): each holds one frame.

    Where they fall short of the ``stated`` duration's frames by over 10% (more than a variable frame rate
    explains), the file was cut short after its header was written: the stated count is returned, so decoding
    fails at the first missing frame (and keeps those before it) instead of passing the file off as whole.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        counted = sum(1 for packet in container.demux(stream) if packet.size)
    return round(stated) if stated - counted > max(1.0, 0.1 * stated) else counted


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0
