"""The moving objects of a synthetic clip, each drawn once on its own small transparent canvas.

Cars, pedestrians and riders on bicycles or motorcycles: RGB pixels plus trainIds, 255 where transparent.
"""

from __future__ import annotations

import numpy as np

from blockcopy_core.constants import IGNORE_INDEX
from blockcopy_core.data.scene.classes import BICYCLE, CAR, MOTORCYCLE, PERSON, RIDER
from blockcopy_core.data.scene.colour import jitter


class _Canvas:
    """A small transparent drawing surface for one object; coordinates are fractions of its height."""

    def __init__(self, height: int, width: int) -> None:
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), IGNORE_INDEX, np.uint8)
        self.y = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
        self.x = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / height

    def paint(self, mask: np.ndarray, colour: np.ndarray, cls: int, gain: np.ndarray | float = 1.0) -> None:
        mask = np.broadcast_to(mask, self.label.shape)
        pixels = np.broadcast_to(colour * np.asarray(gain, np.float32)[..., None], self.rgb.shape)
        self.rgb[mask] = np.clip(pixels[mask], 0, 255)
        self.label[mask] = cls

    def disc(self, cx: float, cy: float, r: float) -> np.ndarray:
        return (self.x - cx) ** 2 + (self.y - cy) ** 2 < r * r

    def segment(self, a: tuple[float, float], b: tuple[float, float], thickness: float) -> np.ndarray:
        """Pixels within ``thickness / 2`` of the segment from ``a`` to ``b`` (x, y)."""
        (ax, ay), (bx, by) = a, b
        dx, dy = bx - ax, by - ay
        t = np.clip(((self.x - ax) * dx + (self.y - ay) * dy) / (dx * dx + dy * dy), 0, 1)
        return (self.x - ax - t * dx) ** 2 + (self.y - ay - t * dy) ** 2 < (thickness / 2) ** 2

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rgb, self.label


_CAR_COLOURS = ((25, 25, 30), (200, 200, 205), (130, 130, 135), (40, 55, 115), (150, 28, 28), (35, 75, 50),
                (90, 70, 45))
_CLOTHES = ((40, 40, 45), (150, 30, 40), (40, 60, 120), (200, 190, 170), (70, 90, 60), (110, 80, 120))
_SKIN = ((230, 190, 160), (190, 140, 100), (120, 85, 60))


def car(rng: np.random.Generator, height: int, facing: int) -> tuple[np.ndarray, np.ndarray]:
    """A side view of a car ``height`` pixels tall, facing right (``facing`` = 1) or left (-1)."""
    length = 2.3
    c = _Canvas(height, max(2, round(length * height)))
    x, y = c.x / length, c.y  # x as a fraction of the car's length
    paint = jitter(rng, _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))], 12)
    shade = 1.1 - 0.35 * y
    body = (y >= 0.38 + 0.12 * np.clip((x - 0.82) / 0.18, 0, 1)) & (y <= 0.86) & (x >= 0.01) & (x <= 0.99)
    slope = np.clip((0.42 - y) / 0.37, 0, 1)
    cabin = (y >= 0.05) & (y < 0.42) & (x >= 0.2 + 0.1 * slope) & (x <= 0.74 - 0.16 * slope)
    c.paint(body | cabin, paint, CAR, shade)
    glass = cabin & (y >= 0.1) & (y < 0.38) & (x >= 0.23 + 0.1 * slope) & (x <= 0.71 - 0.16 * slope)
    c.paint(glass & (np.abs(x - 0.47) > 0.015), jitter(rng, (45, 55, 70), 8), CAR, 1.2 - 0.5 * y)
    c.paint((x > 0.965) & (y > 0.5) & (y < 0.6), jitter(rng, (240, 230, 185), 8), CAR)
    c.paint((x < 0.03) & (y > 0.44) & (y < 0.54), jitter(rng, (190, 25, 25), 8), CAR)
    for wx in (0.2, 0.8):
        c.paint(c.disc(wx * length, 0.83, 0.16), np.full(3, 25, np.float32), CAR)
        c.paint(c.disc(wx * length, 0.83, 0.07), np.full(3, 140, np.float32), CAR)
    rgb, label = c.result()
    return (rgb, label) if facing > 0 else (rgb[:, ::-1], label[:, ::-1])


def person(rng: np.random.Generator, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A standing or walking person ``height`` pixels tall, seen from the side or front."""
    c = _Canvas(height, max(2, round(0.38 * height)))
    x, y = c.x - 0.19, c.y  # x relative to the body axis
    shirt = jitter(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 15)
    trousers = jitter(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 15) * 0.7
    c.paint((np.abs(x) < 0.06) & (y > 0.14) & (y < 0.5) | (np.abs(x) < 0.11) & (y > 0.16) & (y < 0.46),
            shirt, PERSON, 1.1 - 0.3 * y)
    c.paint((np.abs(np.abs(x) - 0.04) < 0.035) & (y >= 0.5) & (y < 0.96), trousers, PERSON)
    c.paint((np.abs(np.abs(x) - 0.045) < 0.04) & (y >= 0.96), np.full(3, 30, np.float32), PERSON)
    c.paint(c.disc(0.19, 0.075, 0.065), jitter(rng, _SKIN[int(rng.integers(len(_SKIN)))], 10), PERSON)
    c.paint(c.disc(0.19, 0.06, 0.06) & (y < 0.06), jitter(rng, (50, 35, 25), 15), PERSON)
    return c.result()


def rider(rng: np.random.Generator, height: int, motorcycle: bool) -> tuple[np.ndarray, np.ndarray]:
    """A rider on a bicycle or motorcycle, ``height`` pixels tall, riding to the right."""
    c = _Canvas(height, max(2, round(0.95 * height)))
    wheels = ((0.19, 0.8), (0.76, 0.8))
    if motorcycle:
        for wx, wy in wheels:
            c.paint(c.disc(wx, wy, 0.17), np.full(3, 25, np.float32), MOTORCYCLE)
        body = ((c.x - 0.47) / 0.3) ** 2 + ((c.y - 0.64) / 0.11) ** 2 < 1
        c.paint(body, jitter(rng, _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))], 15), MOTORCYCLE,
                1.1 - 0.3 * c.y)
        c.paint(c.segment((0.7, 0.62), (0.76, 0.8), 0.04), np.full(3, 90, np.float32), MOTORCYCLE)
        hands = (0.66, 0.5)
    else:
        frame_colour = jitter(rng, ((30, 90, 160), (180, 40, 40), (40, 40, 40))[int(rng.integers(3))], 15)
        tyre = np.full(3, 30, np.float32)
        for wx, wy in wheels:
            c.paint(c.disc(wx, wy, 0.17) & ~c.disc(wx, wy, 0.13), tyre, BICYCLE)
        seat, handle, crank = (0.38, 0.55), (0.7, 0.52), (0.45, 0.8)
        tubes = (wheels[0], seat), (seat, crank), (crank, wheels[0]), (seat, handle), (crank, handle), \
            (handle, wheels[1])
        for a, b in tubes:
            c.paint(c.segment(a, b, 0.035), frame_colour, BICYCLE)
        hands = handle
    clothes = jitter(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 15)
    hip, shoulder, knee, foot = (0.38, 0.52), (0.5, 0.17), (0.55, 0.62), (0.46, 0.8)
    c.paint(c.segment(hip, shoulder, 0.13), clothes, RIDER, 1.1 - 0.3 * c.y)
    c.paint(c.segment(shoulder, hands, 0.05), clothes, RIDER)
    trousers = jitter(rng, (45, 45, 55), 10)
    c.paint(c.segment(hip, knee, 0.07) | c.segment(knee, foot, 0.06), trousers, RIDER)
    c.paint(c.disc(0.52, 0.075, 0.065), jitter(rng, _SKIN[int(rng.integers(len(_SKIN)))], 10), RIDER)
    return c.result()
