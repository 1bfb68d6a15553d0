"""Legends for output pictures and videos: the class colours and what the execution-grid marking means.

A legend lists all 19 classes at fixed places, those absent from the frame dimmed: its size then depends only on
its width (every frame of a video or GIF has the same size, so segments stitch) and entries never jump between
frames, while the classes present still stand out. Text uses PIL's default font, nothing to download.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..constants import CLASS_NAMES, NUM_CLASSES, PALETTE

BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIM_TEXT = (100, 100, 100)
DIM_SHARE = 0.25  # of a class colour left in the swatch of a class absent from the frame
MIN_FONT_SIZE = 10  # px, the default font's; wider frames get larger text, so it stays readable when scaled down
FRACTION_TEMPLATE = "{:.0%} executed"

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Marker:
    """How a picture marks executed blocks, drawn as the legend's swatch: ``fill`` and ``outline`` (None: none)."""

    fill: Colour | None = None
    outline: Colour | None = None


def present_classes(prediction: np.ndarray) -> list[int]:
    """The classes (trainIds 0..18) with at least one pixel in ``prediction`` (HxW uint8), in class order."""
    counts = np.bincount(prediction.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return np.flatnonzero(counts).tolist()


def executed_fraction(grid: torch.Tensor | np.ndarray) -> float:
    """The share of blocks executed in ``grid`` (bool rows x cols)."""
    return float(np.asarray(grid, dtype=bool).mean())


def font_size(width: int) -> int:
    """The text size (px) for pictures ``width`` px wide: larger on wide frames, which players show scaled down."""
    return max(MIN_FONT_SIZE, width // 128)


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: float) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` px long (a longer word gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


class Legend:
    """A strip ``width`` px wide: the class swatches and names in columns, then the marker of executed blocks with
    ``note`` and, at the right, the frame's executed fraction, in text of ``size`` px (default: for ``width``).
    Built once per size; :meth:`render` per frame only copies the swatches of the classes present and writes the
    fraction."""

    def __init__(self, width: int, note: str, marker: Marker | None = None, size: int | None = None):
        size = size or font_size(width)
        self.font = font = ImageFont.load_default(size)  # FreeType's at any size; without FreeType, a bitmap one
        pad = max(2, size // 3)
        line = font.getbbox("Ag")[3] + pad
        name_width = max(math.ceil(font.getlength(name)) for name in CLASS_NAMES)
        column = size + pad + name_width + 2 * pad
        columns = max(1, (width - pad) // column)
        rows = -(-NUM_CLASSES // columns)
        fraction_width = math.ceil(font.getlength(FRACTION_TEMPLATE.format(1))) + 2 * pad
        note_x = pad + (size + pad if marker else 0)
        notes = _wrap(note, font, max(1, width - note_x - fraction_width))
        height = 2 * pad + (rows + len(notes)) * line
        self.width, self.height = width, height + height % 2  # even: yuv420p videos need even sizes

        lit = Image.new("RGB", (width, self.height), BACKGROUND)
        dim = lit.copy()
        self.boxes: list[tuple[slice, slice]] = []  # each class's swatch and name, as array indices
        for index, (name, colour) in enumerate(zip(CLASS_NAMES, PALETTE, strict=True)):
            x, y = pad + (index % columns) * column, pad + (index // columns) * line
            faded = tuple(round(DIM_SHARE * c + (1 - DIM_SHARE) * b) for c, b in zip(colour, BACKGROUND, strict=True))
            for image, swatch, text in ((lit, colour, TEXT), (dim, faded, DIM_TEXT)):
                draw = ImageDraw.Draw(image)
                draw.rectangle((x, y + 1, x + size - 1, y + size), fill=swatch)
                draw.text((x + size + pad, y), name, font=font, fill=text)
            self.boxes.append((slice(y, min(y + line, self.height)), slice(x, min(x + column, width))))
        y = pad + rows * line
        for image in (lit, dim):
            draw = ImageDraw.Draw(image)
            if marker:
                draw.rectangle((pad, y + 1, pad + size - 1, y + size), fill=marker.fill, outline=marker.outline)
            for number, text in enumerate(notes):
                draw.text((note_x, y + number * line), text, font=font, fill=TEXT)
        self.fraction_box = (slice(y, y + line), slice(max(0, width - fraction_width), width))
        self._lit, self._dim = np.asarray(lit), np.asarray(dim)

    def render(self, prediction: np.ndarray, executed: float | None = None) -> np.ndarray:
        """The legend (height x width x 3 uint8) of a frame with class map ``prediction`` whose blocks were
        ``executed`` (a fraction, or None where no grid applies)."""
        strip = self._dim.copy()
        for index in present_classes(prediction):
            strip[self.boxes[index]] = self._lit[self.boxes[index]]
        if executed is not None:
            rows, columns = self.fraction_box
            slot = Image.new("RGB", (columns.stop - columns.start, rows.stop - rows.start), BACKGROUND)
            ImageDraw.Draw(slot).text((0, 0), FRACTION_TEMPLATE.format(executed), font=self.font, fill=TEXT)
            strip[self.fraction_box] = np.asarray(slot)
        return strip


@functools.lru_cache(maxsize=8)
def legend_for(width: int, note: str, marker: Marker | None = None, size: int | None = None) -> Legend:
    """The :class:`Legend` of these arguments, built once per process."""
    return Legend(width, note, marker, size)


@functools.lru_cache(maxsize=8)
def captions(titles: tuple[str, ...], panel_width: int) -> np.ndarray:
    """A strip naming side-by-side panels ``panel_width`` px wide, one title each (read only, built once)."""
    font = ImageFont.load_default(font_size(panel_width * len(titles)))
    pad = 2
    height = font.getbbox("Ag")[3] + 2 * pad
    strip = Image.new("RGB", (panel_width * len(titles), height + height % 2), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for index, title in enumerate(titles):
        draw.text((index * panel_width + pad, pad), title, font=font, fill=TEXT)
    array = np.asarray(strip)
    array.flags.writeable = False
    return array
