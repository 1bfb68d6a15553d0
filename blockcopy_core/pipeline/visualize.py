"""Outputs for people: per-frame pictures and an animation per clip, and Cityscapes-format predictions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import Clip, Frame
from ..labels import colorize, train_ids_to_label_ids
from .legend import Marker, captions, executed_fraction, legend_for

PANEL_WIDTH = 384  # px; the panels of the composite pictures and animations are downscaled to stay small
TINT = (255, 0, 0)
CAPTIONS = ("input", "prediction", "executed blocks (red)")
GRID_NOTE = "red tint: block executed this frame, the rest copied from the previous frame"
DENSE_NOTE = "dense model: every block computed in every frame"
TINT_MARKER = Marker(fill=(191, 64, 64))  # the tint over a mid-grey input


def grid_overlay(image: np.ndarray, grid: torch.Tensor) -> np.ndarray:
    """Tint executed blocks red on ``image``; ``grid`` is a bool (rows x cols) execution grid."""
    height, width = image.shape[:2]
    rows, cols = grid.shape
    cell = np.asarray(grid, dtype=bool).repeat(-(-height // rows), 0).repeat(-(-width // cols), 1)[:height, :width]
    overlay = image.astype(np.float32)
    overlay[cell] = 0.5 * overlay[cell] + 0.5 * np.array(TINT, np.float32)
    return overlay.astype(np.uint8)


def composite(image: np.ndarray, prediction: np.ndarray, grid: torch.Tensor | None) -> np.ndarray:
    """Side-by-side panels [input | prediction in class colours | input with executed blocks tinted] (the last
    only with a ``grid``), each at most ``PANEL_WIDTH`` wide, captioned above, with the legend below."""
    height, width = image.shape[:2]
    size = (min(width, PANEL_WIDTH), max(1, round(height * min(width, PANEL_WIDTH) / width)))
    colours = Image.fromarray(colorize(prediction)).resize(size, Image.Resampling.NEAREST)  # class colours kept
    panels = [Image.fromarray(image).resize(size), colours]
    if grid is not None:
        panels.append(Image.fromarray(grid_overlay(image, grid)).resize(size))
    body = np.hstack([np.asarray(panel) for panel in panels])
    if grid is None:
        legend = legend_for(body.shape[1], DENSE_NOTE).render(prediction)
    else:
        legend = legend_for(body.shape[1], GRID_NOTE, TINT_MARKER).render(prediction, executed_fraction(grid))
    return np.vstack([captions(CAPTIONS[: len(panels)], size[0]), body, legend])


class FrameWriter:
    """Writes per evaluated frame the input, its colourised prediction, (for BlockCopy) the execution grid over
    the input and a composite of them with a legend (:func:`composite`), and per clip an animated GIF of the
    composites. Not for video files (``video_output.VideoOutputWriter`` writes their overlay videos)."""

    def __init__(self, output_dir: str | os.PathLike):
        self.output_dir = Path(output_dir)
        self._animation: list[Image.Image] = []

    def add_frame(self, clip: Clip, frame: Frame, prediction: np.ndarray, grid: torch.Tensor | None) -> None:
        if clip.video is not None:
            return
        folder = self.output_dir / clip.clip_id
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(frame.name).name
        Image.fromarray(frame.image).save(folder / f"{stem}_input.jpg", quality=90)
        Image.fromarray(colorize(prediction)).save(folder / f"{stem}_pred.png")
        if grid is not None:
            Image.fromarray(grid_overlay(frame.image, grid)).save(folder / f"{stem}_grid.jpg", quality=90)
        picture = Image.fromarray(composite(frame.image, prediction, grid))
        picture.save(folder / f"{stem}_panels.png")
        self._animation.append(picture)

    def finish_clip(self, clip: Clip) -> None:
        frames, self._animation = self._animation, []
        if frames:
            frames[0].save(self.output_dir / clip.clip_id / f"{clip.clip_id}.gif", save_all=True,
                           append_images=frames[1:], duration=100, loop=0)


class PredictionWriter:
    """Writes Cityscapes-format predictions (labelId PNGs at the frame's full resolution).

    Cityscapes clips: only the annotated frame (the clip's last), named ``<city>_<seq>_<frame>_pred_labelIds.png``
    under ``<city>/``, as the official evaluation script and benchmark server match them; video files: every
    frame, under ``<video_id>/`` named by its index in the video; other sources: every evaluated frame, under
    ``<clip_id>/``.
    """

    def __init__(self, predictions_dir: str | os.PathLike):
        self.predictions_dir = Path(predictions_dir)

    def add_frame(self, clip: Clip, frame: Frame, prediction: np.ndarray, grid: torch.Tensor | None) -> None:
        stem = Path(frame.name).name
        if clip.source == "cityscapes":
            if frame.name != clip.frame_names[-1]:
                return
            prefix = stem.removesuffix("_leftImg8bit")
            path = self.predictions_dir / prefix.split("_")[0] / f"{prefix}_pred_labelIds.png"
        else:
            path = self.predictions_dir / (clip.video.video_id if clip.video else clip.clip_id) / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(train_ids_to_label_ids(prediction)).save(path)

    def finish_clip(self, clip: Clip) -> None:
        pass
