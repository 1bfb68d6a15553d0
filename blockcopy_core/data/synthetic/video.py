"""Writing a synthetic street scene as a video file, for tests and benchmarks of the video source."""

from __future__ import annotations

from pathlib import Path

from blockcopy_core.data.encode import VideoEncoder
from blockcopy_core.data.scene import SyntheticClipSpec, render_clip


def write_synthetic_video(path: str | Path, num_frames: int, height: int = 576, width: int = 768, fps: float = 25,
                          seed: int = 0, panning: bool = False, crf: int = 18) -> Path:
    """Render ``num_frames`` frames of one street scene (clip 0 of ``seed``) into an H.264 video at ``path``.

    ``height`` and ``width`` must be multiples of 32 (the renderer's rule); ``panning=False`` keeps the camera
    still. The labels the renderer also makes are not written.
    """
    spec = SyntheticClipSpec(seed, 0, height, width, num_frames, panning)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoEncoder(path, fps, crf=crf) as encoder:
        for image, _ in render_clip(spec):
            encoder.add(image)
    return path
