"""Writing RGB frames to a video file that browsers and VLC play: H.264 (libx264, in PyAV's wheel), yuv420p.

H.264 in MP4 is the one codec every browser and player decodes; PyAV's wheel encodes it with libx264 (its
wheel has no libopenh264). Frames are encoded without B-frames, so every packet's decode and presentation
times are equal and segment files can be joined by shifting timestamps (``pipeline/video_output.py``), with a
keyframe every ``KEYFRAME_SECONDS``, so a segment decoded from the middle of such a file seeks near its start.
MP4 files get their index at the front (``faststart``): a browser plays them while downloading, and a file cut
short keeps its index, so the frames before the cut still decode.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

KEYFRAME_SECONDS = 2
_FAST_START_SUFFIXES = (".mp4", ".mov", ".m4v")


def frame_rate(fps: float) -> Fraction:
    """``fps`` as the exact rate a container stores (29.97... -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


class VideoEncoder:
    """Encodes HxWx3 uint8 RGB frames of one size into ``path`` (container from its suffix) at ``fps``.

    Odd sizes are padded by repeating the last row or column (yuv420p needs even sizes). ``crf`` is x264's
    quality (lower: better, larger; 23 is its default). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 23, preset: str = "veryfast", codec: str = "libx264"):
        self.path = Path(path)
        options = {"movflags": "+faststart"} if self.path.suffix.lower() in _FAST_START_SUFFIXES else {}
        self._container = av.open(str(self.path), "w", options=options)
        self._stream = self._container.add_stream(codec, rate=frame_rate(fps))
        self._stream.pix_fmt = "yuv420p"
        self._codec_options = {"bf": "0", "g": str(max(1, round(KEYFRAME_SECONDS * fps)))}
        if codec == "libx264":
            self._codec_options |= {"crf": str(crf), "preset": preset}
        self._size: tuple[int, int] | None = None
        self.num_frames = 0

    def add(self, image: np.ndarray) -> None:
        """Encode the next frame; every frame must have the first one's size."""
        if self._size is None:
            self._size = image.shape[:2]
            self._stream.height, self._stream.width = (side + side % 2 for side in self._size)
            self._stream.options = self._codec_options
        elif image.shape[:2] != self._size:
            raise ValueError(f"{self.path}: frame size {image.shape[:2]} differs from the first frame's {self._size}")
        height, width = image.shape[:2]
        if height % 2 or width % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.num_frames
        self._container.mux(self._stream.encode(frame))
        self.num_frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (given no frame, it writes no file)."""
        if self._size is not None:
            self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
