"""Decoding a video segment's frames with PyAV, streamed: one decoded frame in memory at a time.

Frames are identified by time: a frame shown at ``t`` seconds after the stream's start is frame
``round(t * fps)``. The decoder seeks to the last keyframe at or before the segment's first frame and decodes
forward, dropping frames before it and every frame between the ``stride``-th ones. Identifying frames by time,
not by counting, gives two segments of one video the same numbering without either decoding the other's
frames. Where a variable-frame-rate stream skips an index, the next frame stands in for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

from blockcopy_core.data.errors import FrameReadError
from blockcopy_core.data.segments import VideoSegment


def iter_video_frames(segment: VideoSegment) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(video frame index, HxWx3 uint8 RGB)`` for each of the segment's frames, in order.

    A file that cannot be opened or decoded, that ends before the segment does (truncated), or whose frame size
    changes from the segment's, raises :class:`FrameReadError` naming the file, the frame and how many of the
    segment's frames were decoded; the frames before it have been yielded.
    """
    wanted = segment.frame_indices
    done, index = 0, wanted[0]  # the frame being decoded, for errors
    try:
        with av.open(segment.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps ahead of the model
            for index, frame in _indexed_frames(container, stream, wanted[0], segment.fps):
                if (frame.height, frame.width) != (segment.height, segment.width):
                    raise _error(segment, index, done, f"frame size changes mid-stream to {frame.height}x"
                                 f"{frame.width} (height x width) from {segment.height}x{segment.width}")
                image = None
                while done < len(wanted) and wanted[done] <= index:
                    image = frame.to_ndarray(format="rgb24") if image is None else image
                    yield wanted[done], image
                    done += 1
                if done == len(wanted):
                    return
    except av.FFmpegError as err:
        raise _error(segment, index, done, f"{type(err).__name__}: {err}") from err
    except IndexError as err:  # no video stream
        raise _error(segment, index, done, "the file has no video stream") from err
    raise _error(segment, wanted[done], done, "the stream ends before it (truncated file?)")


def _indexed_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream, first: int,
                    fps: float) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` from the keyframe at or before frame ``first`` on; from the start where seeking fails."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if first > 0:
        target = start + (first - 0.5) / fps  # half a frame early: a timestamp rounded down still lands before it
        container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        frames = _numbered(container.decode(stream), start, fps)
        head = next(frames, None)
        if head is not None and head[1].time is not None and head[0] <= first:
            yield head
            yield from frames
            return
        frames.close()
        container.seek(0, stream=stream, backward=True, any_frame=False)  # it landed past ``first``: start over
    yield from _numbered(container.decode(stream), start, fps)


def _numbered(frames: Iterator[av.VideoFrame], start: float, fps: float) -> Iterator[tuple[int, av.VideoFrame]]:
    count = 0
    for frame in frames:
        yield (count if frame.time is None else round((frame.time - start) * fps)), frame
        count += 1


def _error(segment: VideoSegment, index: int, done: int, reason: str) -> FrameReadError:
    return FrameReadError(segment.path, f"frame {index}: {reason} ({done} of segment {segment.segment_index}'s "
                          f"{segment.num_frames} frames decoded)")
