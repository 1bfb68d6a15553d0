"""Pictures for people: colourised predictions and execution grids drawn over the input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .labels import colorize


def grid_overlay(image: np.ndarray, grid: torch.Tensor) -> np.ndarray:
    """Tint executed blocks red on ``image``; ``grid`` is a bool (rows x cols) execution grid."""
    height, width = image.shape[:2]
    rows, cols = grid.shape
    cell = np.asarray(grid, dtype=bool).repeat(-(-height // rows), 0).repeat(-(-width // cols), 1)[:height, :width]
    overlay = image.astype(np.float32)
    overlay[cell] = 0.5 * overlay[cell] + 0.5 * np.array([255, 0, 0], np.float32)
    return overlay.astype(np.uint8)


class FrameWriter:
    """Writes, per evaluated frame, the input, its colourised prediction and (for BlockCopy) the grid."""

    def __init__(self, output_dir: str | os.PathLike):
        self.output_dir = Path(output_dir)

    def __call__(self, clip, frame, prediction: np.ndarray, grid: torch.Tensor | None) -> None:
        folder = self.output_dir / clip.clip_id
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(frame.name).name
        Image.fromarray(frame.image).save(folder / f"{stem}_input.jpg", quality=90)
        Image.fromarray(colorize(prediction)).save(folder / f"{stem}_pred.png")
        if grid is not None:
            Image.fromarray(grid_overlay(frame.image, grid)).save(folder / f"{stem}_grid.jpg", quality=90)
