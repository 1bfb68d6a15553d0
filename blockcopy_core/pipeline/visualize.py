"""Outputs for people: per-frame pictures and an animation per clip, and Cityscapes-format predictions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import Clip, Frame
from ..labels import colorize, train_ids_to_label_ids

ANIMATION_WIDTH = 512  # px; animations are downscaled to stay small


def grid_overlay(image: np.ndarray, grid: torch.Tensor) -> np.ndarray:
    """Tint executed blocks red on ``image``; ``grid`` is a bool (rows x cols) execution grid."""
    height, width = image.shape[:2]
    rows, cols = grid.shape
    cell = np.asarray(grid, dtype=bool).repeat(-(-height // rows), 0).repeat(-(-width // cols), 1)[:height, :width]
    overlay = image.astype(np.float32)
    overlay[cell] = 0.5 * overlay[cell] + 0.5 * np.array([255, 0, 0], np.float32)
    return overlay.astype(np.uint8)


class FrameWriter:
    """Writes per evaluated frame the input, its colourised prediction and (for BlockCopy) the execution grid
    over the input, and per clip an animated GIF of the prediction blended over the input. Not for video files
    (``video_output.VideoOutputWriter`` writes their overlay videos)."""

    def __init__(self, output_dir: str | os.PathLike):
        self.output_dir = Path(output_dir)
        self._animation: list[Image.Image] = []

    def add_frame(self, clip: Clip, frame: Frame, prediction: np.ndarray, grid: torch.Tensor | None) -> None:
        if clip.video is not None:
            return
        folder = self.output_dir / clip.clip_id
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(frame.name).name
        colour = colorize(prediction)
        Image.fromarray(frame.image).save(folder / f"{stem}_input.jpg", quality=90)
        Image.fromarray(colour).save(folder / f"{stem}_pred.png")
        shown = frame.image
        if grid is not None:
            shown = grid_overlay(frame.image, grid)
            Image.fromarray(shown).save(folder / f"{stem}_grid.jpg", quality=90)
        blend = Image.fromarray(((shown.astype(np.uint16) + colour) // 2).astype(np.uint8))
        height = max(1, round(blend.height * ANIMATION_WIDTH / blend.width))
        self._animation.append(blend.resize((ANIMATION_WIDTH, height)) if blend.width > ANIMATION_WIDTH else blend)

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
