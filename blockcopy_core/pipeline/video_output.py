"""Outputs of video clips: an overlay video per segment, stitched into one per video, and class-index PNGs.

Layout under ``output_dir``::

    videos/<video_id>.mp4                          the whole video's overlay (stitch_video, by the driver)
    videos/<video_id>/segments/s<segment>.mp4      one segment's overlay (VideoOutputWriter, in the actors)
    videos/<video_id>/predictions/<frame>.png      with save_predictions: one PNG per frame, named by the frame's
                                                   index in the video (000123.png), 8-bit grey, the trainId
                                                   (0..18, the model's class index) of each pixel, lossless

Each overlay frame carries a legend (``legend.Legend``: the classes, those present lit; the executed blocks'
outline; the executed fraction): by default in its bottom-left corner, half the frame wide (the video keeps the
source's size; a frame too small to hold it gets none), or in a band below it (``legend="below"``: nothing of
the scene hidden, the video that much taller).
Overlays are H.264 MP4 (``data/encode.py`` says why) at the source's frame rate divided by the stride, so they
play in real time. A segment's file appears (renamed from ``.partial.mp4``) only when its clip has finished, so
a crashed or resumed run never stitches half a segment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from ..data import Clip, Frame
from ..data.encode import VideoEncoder
from ..data.segments import VideoSegment
from ..labels import colorize
from .legend import Legend, Marker, executed_fraction, font_size, legend_for

log = logging.getLogger("blockcopy")
GRID_COLOUR = (255, 255, 255)  # outlines of executed blocks: white is no Cityscapes class colour
_FAST_START = {"movflags": "+faststart"}
OUTLINE_NOTE = "white outline: block executed this frame, the rest copied from the previous frame"
COPIED_NOTE = "blocks not executed this frame are copied from the previous frame"
DENSE_NOTE = "dense model: every block computed in every frame"
OUTLINE_MARKER = Marker(outline=GRID_COLOUR)
LEGEND_PLACES = ("corner", "below")
CORNER_OPACITY = 205  # /256: the scene shows faintly through a legend in the corner


def overlay_path(output_dir: str | os.PathLike, video_id: str) -> Path:
    """Where the whole video's overlay goes."""
    return Path(output_dir) / "videos" / f"{video_id}.mp4"


def segment_overlay_path(output_dir: str | os.PathLike, segment: VideoSegment) -> Path:
    """Where one segment's overlay goes."""
    return Path(output_dir) / "videos" / segment.video_id / "segments" / f"s{segment.segment_index:04d}.mp4"


def blend(image: np.ndarray, prediction: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` (HxWx3 uint8) blended with the class colours of ``prediction`` (HxW uint8 trainIds).

    In 8-bit fixed point (``alpha`` in 1/256 steps) with ``np.take`` for the colour lookup: three times faster
    than floats and fancy indexing, which at 1024x2048 took longer than encoding the frame.
    """
    weight = round(alpha * 256)
    colours = colorize(np.arange(256, dtype=np.uint8)).astype(np.uint16) * weight + 128  # rounding folded in
    mixed = image.astype(np.uint16)
    mixed *= 256 - weight
    mixed += np.take(colours, prediction, axis=0)
    mixed >>= 8
    return mixed.astype(np.uint8)


def outline_blocks(image: np.ndarray, grid: torch.Tensor, colour: tuple[int, int, int] = GRID_COLOUR) -> np.ndarray:
    """Draw the borders of executed blocks (``grid``: bool rows x cols over the frame) on ``image``, in place.

    A block covers ``ceil(height / rows)`` x ``ceil(width / cols)`` pixels, as in ``visualize.grid_overlay``.
    Only the border rows and columns are touched: a quarter of the time of masking the whole frame at 1024x2048.
    """
    height, width = image.shape[:2]
    executed = np.asarray(grid, dtype=bool)
    cell_h, cell_w = -(-height // executed.shape[0]), -(-width // executed.shape[1])
    ys = np.flatnonzero(np.isin(np.arange(height) % cell_h, (0, cell_h - 1)))  # rows holding block borders
    xs = np.flatnonzero(np.isin(np.arange(width) % cell_w, (0, cell_w - 1)))
    lines = image[ys]
    lines[executed.repeat(cell_w, 1)[ys // cell_h, :width]] = colour
    image[ys] = lines
    lines = image[:, xs]
    lines[executed.repeat(cell_h, 0)[:height, xs // cell_w]] = colour
    image[:, xs] = lines
    return image


@dataclass
class _OpenSegment:
    encoder: VideoEncoder
    partial: Path
    final: Path
    frames: int = 0


class VideoOutputWriter:
    """A ``FrameOutput`` for video clips (others are ignored): each segment's overlay video and, with
    ``save_predictions``, its class-index PNGs. ``show_grid`` outlines the blocks BlockCopy executed; ``legend``
    places the legend: "corner", "below" (a band under the frame) or None; ``crf`` and ``preset`` are x264's
    quality and speed (``data.encode.VideoEncoder``)."""

    def __init__(self, output_dir: str | os.PathLike, show_grid: bool = True, save_predictions: bool = False,
                 alpha: float = 0.5, crf: int = 23, preset: str = "veryfast", legend: str | None = "corner"):
        if legend not in (None, *LEGEND_PLACES):
            raise ValueError(f"legend must be one of {LEGEND_PLACES} or None, got {legend!r}")
        self.output_dir = Path(output_dir)
        self.show_grid, self.save_predictions, self.alpha = show_grid, save_predictions, alpha
        self.legend = legend
        self.crf, self.preset = crf, preset
        self._open: dict[str, _OpenSegment] = {}  # clip id -> its segment being written

    def add_frame(self, clip: Clip, frame: Frame, prediction: np.ndarray, grid: torch.Tensor | None) -> None:
        segment = clip.video
        if segment is None:
            return
        state = self._open.get(clip.clip_id)
        if state is None or frame.name == clip.frame_names[0]:  # a clip re-run after its batch failed restarts
            self._abandon(clip.clip_id)
            state = self._open[clip.clip_id] = self._start(segment)
        overlay = blend(frame.image, prediction, self.alpha)
        if self.show_grid and grid is not None:
            outline_blocks(overlay, grid)  # after blending: the outlines stay white on every class
        if self.legend:
            overlay = self._add_legend(overlay, grid, prediction)
        state.encoder.add(overlay)
        if self.save_predictions:
            folder = self.output_dir / "videos" / segment.video_id / "predictions"
            folder.mkdir(parents=True, exist_ok=True)
            video_frame = segment.frame_indices[state.frames]
            Image.fromarray(prediction.astype(np.uint8)).save(folder / f"{video_frame:06d}.png", compress_level=1)
        state.frames += 1

    def finish_clip(self, clip: Clip) -> None:
        state = self._open.pop(clip.clip_id, None)
        if state is not None:
            state.encoder.close()
            os.replace(state.partial, state.final)

    def close(self) -> None:
        """Drop the segments of clips that failed (never finished): their partial files are deleted."""
        for clip_id in list(self._open):
            self._abandon(clip_id)

    def _add_legend(self, overlay: np.ndarray, grid: torch.Tensor | None, prediction: np.ndarray) -> np.ndarray:
        height, width = overlay.shape[:2]
        legend = self._legend(width if self.legend == "below" else width // 2, font_size(width), grid)
        # classes present in every other row and column: a quarter of the counting, and a class too small to
        # appear there is too small to see in the video
        strip = legend.render(prediction[::2, ::2], None if grid is None else executed_fraction(grid))
        if self.legend == "below":
            return np.vstack([overlay, strip])
        if legend.height <= height // 3:  # else the frame is too small to hold it
            corner = overlay[height - legend.height :, : legend.width]
            mixed = strip.astype(np.uint16) * CORNER_OPACITY + corner * np.uint16(256 - CORNER_OPACITY)
            corner[:] = mixed >> 8
        return overlay

    def _legend(self, width: int, size: int, grid: torch.Tensor | None) -> Legend:
        # one run's frames all take one branch (a BlockCopy model gives every frame a grid): one size per video
        if grid is None:
            return legend_for(width, DENSE_NOTE, None, size)
        if self.show_grid:
            return legend_for(width, OUTLINE_NOTE, OUTLINE_MARKER, size)
        return legend_for(width, COPIED_NOTE, None, size)

    def _start(self, segment: VideoSegment) -> _OpenSegment:
        final = segment_overlay_path(self.output_dir, segment)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_suffix(".partial.mp4")
        return _OpenSegment(VideoEncoder(partial, segment.output_fps, self.crf, self.preset), partial, final)

    def _abandon(self, clip_id: str) -> None:
        state = self._open.pop(clip_id, None)
        if state is not None:
            state.encoder.close()
            state.partial.unlink(missing_ok=True)


def stitch_video(output_dir: str | os.PathLike, segments: Sequence[VideoSegment]) -> Path:
    """Join the overlays of one video's ``segments`` (all of them, any order) into :func:`overlay_path`."""
    ordered = sorted(segments, key=lambda s: s.segment_index)
    if not ordered or len({s.video_id for s in ordered}) != 1:
        raise ValueError("stitch_video needs the segments of exactly one video")
    dest = overlay_path(output_dir, ordered[0].video_id)
    stitch_segments([segment_overlay_path(output_dir, s) for s in ordered], dest)
    return dest


def stitch_segments(segment_files: Sequence[Path], dest: Path) -> int:
    """Concatenate video files in order into ``dest``; returns the number of frames written.

    Files with the same stream parameters (codec, size, pixel format, headers, time base: all segments of one
    run's overlays) are joined by copying their packets with shifted timestamps, without re-encoding; other
    files are decoded and re-encoded. ``dest`` appears whole (written to a ``.partial`` name, then renamed).
    """
    if not segment_files:
        raise ValueError(f"no segment files to stitch into {dest}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.stem + ".partial" + dest.suffix)
    joinable = len({_stream_key(path) for path in segment_files}) == 1
    frames = (_remux if joinable else _reencode)(segment_files, partial)
    os.replace(partial, dest)
    return frames


def _stream_key(path: Path) -> tuple:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        return (context.name, context.width, context.height, context.pix_fmt, bytes(context.extradata or b""),
                stream.time_base)


def _remux(files: Sequence[Path], dest: Path) -> int:
    """Copy the packets of ``files`` into ``dest``, each file's timestamps shifted to follow the last one's."""
    frames, end_pts, last_dts = 0, None, None
    with av.open(str(dest), "w", options=_FAST_START if dest.suffix == ".mp4" else {}) as out:
        out_stream = None
        for path in files:
            with av.open(str(path)) as source:
                stream = source.streams.video[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(stream)
                    out_stream.time_base = stream.time_base
                shift = None
                for packet in source.demux(stream):
                    if packet.dts is None:  # the demuxer's empty end-of-stream packet
                        continue
                    if shift is None:  # after the previous file in time, and in decode order
                        shift = 0 if end_pts is None else max(end_pts - packet.pts, last_dts + 1 - packet.dts)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    end_pts = max(end_pts or 0, packet.pts + (packet.duration or 1))
                    last_dts = packet.dts
                    packet.stream = out_stream
                    out.mux(packet)
                    frames += 1
    return frames


def _reencode(files: Sequence[Path], dest: Path) -> int:
    """Decode ``files`` in order and encode their frames into ``dest`` at the first file's frame rate."""
    with av.open(str(files[0])) as first:
        fps = float(first.streams.video[0].average_rate or 25)
    with VideoEncoder(dest, fps) as encoder:
        for path in files:
            with av.open(str(path)) as source:
                for frame in source.decode(video=0):
                    encoder.add(frame.to_ndarray(format="rgb24"))
        return encoder.num_frames


def stitch_videos(output_dir: str | os.PathLike, clips: Sequence[Clip]) -> list[Path]:
    """Stitch the segment overlays written for the video clips among ``clips`` into one overlay per video (those
    of failed segments are left out, with a warning); returns the overlay files."""
    by_video: dict[str, list[VideoSegment]] = {}
    for clip in clips:
        if clip.video is not None:
            by_video.setdefault(clip.video.video_id, []).append(clip.video)
    written = []
    for video_id, segments in by_video.items():
        done = [segment for segment in segments if segment_overlay_path(output_dir, segment).is_file()]
        if len(done) < len(segments):
            log.warning("overlay of %s: %d of its %d segments have no overlay (failed), left out", video_id,
                        len(segments) - len(done), len(segments))
        if done:
            written.append(stitch_video(output_dir, done))
            log.info("overlay video of %s: %s", video_id, written[-1])
    return written
