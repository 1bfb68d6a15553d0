"""The static part of a synthetic clip: sky, buildings, vegetation, sidewalk, road, poles and signs.

Rendered once per clip on a strip as wide as the camera travels; every random draw comes from the clip's
generator, in a fixed order, so the same spec always gives the same background.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from blockcopy_core.data.scene.classes import (
    BUILDING,
    POLE,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
)
from blockcopy_core.data.scene.colour import jitter

_Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (ys column, xs row) pixel coordinates -> mask


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid with spacing ``cell`` pixels, upsampled bilinearly."""
    cell = max(1, int(cell))
    gh, gw = height // cell + 2, width // cell + 2
    grid = Image.fromarray(rng.random((gh, gw), dtype=np.float32))
    return np.asarray(grid.resize((gw * cell, gh * cell), Image.Resampling.BILINEAR))[:height, :width]


class Background:
    """Renders the static part of a clip: sky, buildings, vegetation, sidewalk, road, poles and signs."""

    BUILDING_COLOURS = ((150, 140, 130), (120, 112, 104), (175, 165, 145), (105, 100, 98), (150, 95, 75))

    def __init__(self, rng: np.random.Generator, height: int, width: int, ground_y: int, curb_y: int) -> None:
        self.rng, self.h, self.w = rng, height, width
        self.gy, self.cy = ground_y, curb_y
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), SKY, np.uint8)
        self.ys = np.arange(height, dtype=np.float32)[:, None]
        self.xs = np.arange(width, dtype=np.float32)[None, :]

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        self._sky()
        self._buildings()
        self._ground()
        self._trees()
        self._poles()
        return self.image, self.label

    def _sky(self) -> None:
        rng, h = self.rng, self.h
        top, horizon = jitter(rng, (70, 125, 190), 15), jitter(rng, (175, 200, 225), 15)
        t = np.clip(self.ys / max(1, self.gy), 0, 1)[..., None]
        sky = top * (1 - t) + horizon * t
        cloud = np.clip((_value_noise(rng, h, self.w, 0.12 * h) - 0.55) * 3, 0, 1)[..., None] * 0.7
        self.image[:] = sky * (1 - cloud) + 235 * cloud

    def _buildings(self) -> None:
        rng, h = self.rng, self.h
        x = -int(rng.uniform(0, 0.2) * h)
        while x < self.w:
            if rng.random() < 0.2:  # a gap between buildings shows the sky
                x += max(1, int(h * rng.uniform(0.04, 0.15)))
            bw = max(2, int(h * rng.uniform(0.2, 0.55)))
            top = int(h * rng.uniform(0.03, 0.32))
            self._building(x, bw, top)
            x += bw

    def _building(self, x: int, bw: int, top: int) -> None:
        rng, h = self.rng, self.h
        x0, x1 = max(x, 0), min(x + bw, self.w)
        if x0 >= x1 or top >= self.gy:
            return
        colour = jitter(rng, self.BUILDING_COLOURS[int(rng.integers(len(self.BUILDING_COLOURS)))], 12)
        ys, xs = self.ys[top : self.gy], self.xs[:, x0:x1]
        shade = 0.85 + 0.2 * (ys - top) / max(1, self.gy - top)  # darker at the top, lighter near the street
        pixels = np.broadcast_to(colour * shade[..., None], (len(ys), x1 - x0, 3)).copy()
        pixels[: max(1, int(0.012 * h))] *= 0.7  # roof edge

        py, px = max(3.0, h * rng.uniform(0.055, 0.085)), max(3.0, h * rng.uniform(0.045, 0.075))
        margin = 0.5 * px
        row, col = (ys - top - margin) / py, (xs - x - margin) / px
        rows = int((self.gy - top - margin) / py) - 1  # whole windows only, none on the ground floor
        cols = int((bw - 2 * margin) / px + 0.45)
        inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
        window = inside & (row % 1 < 0.55) & (col % 1 < 0.55)
        lit = ((np.floor(row) * 7 + np.floor(col) * 13 + rng.integers(5)) % 5) == 0
        glass = np.where(lit[..., None], jitter(rng, (195, 185, 140), 15), jitter(rng, (55, 65, 80), 10))
        pixels = np.where(window[..., None], glass, pixels)
        self.image[top : self.gy, x0:x1] = pixels
        self.label[top : self.gy, x0:x1] = BUILDING

    def _ground(self) -> None:
        rng, h, w, gy, cy = self.rng, self.h, self.w, self.gy, self.cy
        # sidewalk: paving tiles, a lighter curb stone along the road
        tile = max(3.0, 0.045 * h)
        ys, xs = self.ys[gy:cy], self.xs
        joints = ((ys - gy) % tile < 1) | (xs % (2 * tile) < 1)
        paving = jitter(rng, (150, 140, 145), 12)
        self.image[gy:cy] = np.where(joints[..., None], paving * 0.8, paving)
        curb = max(1, int(0.012 * h))
        self.image[cy - curb : cy] = jitter(rng, (185, 185, 180), 8)
        self.label[gy:cy] = SIDEWALK
        if rng.random() < 0.5:  # a grass strip between the houses and the sidewalk
            grass = max(1, int((cy - gy) * rng.uniform(0.15, 0.3)))
            noise = _value_noise(rng, grass, w, 2)[..., None]
            self.image[gy : gy + grass] = jitter(rng, (110, 150, 70), 12) * (0.8 + 0.4 * noise)
            self.label[gy : gy + grass] = TERRAIN

        # road: asphalt grain, lighter towards the camera, dashed lane marking, solid edge line
        road_ys = self.ys[cy:]
        grain = _value_noise(rng, h - cy, w, 1.5)[..., None]
        asphalt = jitter(rng, (78, 78, 82), 8)
        self.image[cy:] = asphalt * (0.9 + 0.15 * (road_ys[..., None] - cy) / (h - cy)) + 16 * (grain - 0.5)
        self.label[cy:] = ROAD
        paint = jitter(rng, (225, 225, 215), 8)
        thick = max(1, int(0.01 * h))
        lane_y = cy + int(0.62 * (h - cy))
        dash, period = 0.12 * h, 0.28 * h
        dashes = (self.xs + rng.uniform(0, period)) % period < dash
        self.image[lane_y : lane_y + thick] = np.where(dashes[..., None], paint, self.image[lane_y : lane_y + thick])
        edge_y = cy + max(1, int(0.06 * (h - cy)))
        self.image[edge_y : edge_y + thick] = paint

    def _trees(self) -> None:
        rng, h, gy = self.rng, self.h, self.gy
        leaves = _value_noise(rng, h, self.w, 0.004 * h + 1) * 0.6 + _value_noise(rng, h, self.w, 0.02 * h) * 0.4
        shading = 0.6 + 0.8 * leaves
        for _ in range(int(self.w / h * rng.uniform(0.5, 1.5)) + 1):
            cx = rng.uniform(0, self.w)
            rx = h * rng.uniform(0.06, 0.13)
            ry = rx * rng.uniform(0.8, 1.3)
            cyc = gy - h * rng.uniform(0.1, 0.22)
            trunk = max(1, int(0.012 * h))
            left = int(cx - trunk / 2)
            self._fill_box(int(cyc), gy + max(1, int(0.015 * h)), left, left + trunk, None,
                           jitter(rng, (85, 68, 50), 10), VEGETATION)

            def crown(ys: np.ndarray, xs: np.ndarray, cx=cx, cyc=cyc, rx=rx, ry=ry) -> np.ndarray:
                r = ((xs - cx) / rx) ** 2 + ((ys - cyc) / ry) ** 2
                return r < 1 + 0.6 * (_at(leaves, ys, xs) - 0.5)

            self._fill_box(int(cyc - 1.3 * ry), int(cyc + 1.3 * ry) + 1, int(cx - 1.3 * rx), int(cx + 1.3 * rx) + 1,
                           crown, jitter(rng, (80, 125, 45), 18), VEGETATION, shading)
        if rng.random() < 0.6:  # a hedge along the house fronts
            x0 = int(rng.uniform(0, 0.7) * self.w)
            x1 = min(self.w, x0 + int(h * rng.uniform(0.3, 0.8)))
            height = h * rng.uniform(0.03, 0.06)

            def hedge(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
                return ys > gy - height * (0.6 + 0.8 * _at(leaves, ys, xs)[:1])

            self._fill_box(int(gy - 1.5 * height), gy, x0, x1, hedge, jitter(rng, (70, 115, 40), 12), VEGETATION,
                           shading)

    def _poles(self) -> None:
        rng, h = self.rng, self.h
        for _ in range(int(self.w / h * rng.uniform(0.6, 1.4)) + 1):
            x = int(rng.uniform(0, self.w))
            width = max(1, round(0.009 * h))
            base = self.gy + max(1, int(0.02 * h))
            top = int(base - h * rng.uniform(0.24, 0.38))
            cylinder = np.broadcast_to(0.75 + 0.5 * (self.xs - x) / width, (h, self.w))  # lit from the right
            self._fill_box(top, base, x, x + width, None, jitter(rng, (130, 130, 135), 15), POLE, cylinder)
            if rng.random() < 0.6:
                self._sign(x + width / 2, top)
            else:
                self._traffic_light(x + width / 2, top)

    def _sign(self, cx: float, top: int) -> None:
        """A traffic sign on a pole top: red-rimmed white disc, blue square or yellow diamond."""
        rng, h = self.rng, self.h
        r = max(1.5, 0.03 * h * rng.uniform(0.9, 1.2))
        cyc = top - 0.6 * r
        box = (int(cyc - 1.4 * r), int(cyc + 1.4 * r) + 1, int(cx - 1.4 * r), int(cx + 1.4 * r) + 1)
        shape = int(rng.integers(3))
        if shape == 0:
            for radius, colour in ((r, (200, 30, 35)), (0.65 * r, (235, 235, 235))):
                self._fill_box(*box, _disc(cx, cyc, radius), jitter(rng, colour, 10), TRAFFIC_SIGN)
        elif shape == 1:
            def square(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
                return (np.abs(xs - cx) < r) & (np.abs(ys - cyc) < r)

            self._fill_box(*box, square, jitter(rng, (30, 70, 170), 10), TRAFFIC_SIGN)
        else:
            def diamond(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
                return np.abs(xs - cx) + np.abs(ys - cyc) < 1.3 * r

            self._fill_box(*box, diamond, jitter(rng, (230, 190, 40), 10), TRAFFIC_SIGN)

    def _traffic_light(self, cx: float, top: int) -> None:
        """A dark housing on a pole top with one of its three lamps lit."""
        rng, h = self.rng, self.h
        half_w = max(1.0, 0.014 * h)
        box_h = 6 * half_w
        y0 = top - box_h + half_w
        box = (int(y0), int(y0 + box_h) + 1, int(cx - half_w), int(cx + half_w) + 2)

        def housing(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
            return (np.abs(xs - cx) <= half_w) & (ys >= y0) & (ys < y0 + box_h)

        self._fill_box(*box, housing, jitter(rng, (35, 35, 38), 5), TRAFFIC_LIGHT)
        lit = int(rng.integers(3))
        lamp = ((230, 40, 30), (240, 170, 20), (40, 220, 90))[lit]
        self._fill_box(*box, _disc(cx, y0 + box_h * (1 + 2 * lit) / 6, 0.7 * half_w), jitter(rng, lamp, 10),
                       TRAFFIC_LIGHT)

    def _fill_box(self, y0: int, y1: int, x0: int, x1: int, shape: _Shape | None, colour: np.ndarray, cls: int,
                  texture: np.ndarray | None = None) -> None:
        """Paint ``colour`` (times ``texture``, a full-size gain map) where ``shape`` holds inside a box."""
        y0, y1, x0, x1 = max(y0, 0), min(y1, self.h), max(x0, 0), min(x1, self.w)
        if y0 >= y1 or x0 >= x1:
            return
        ys, xs = self.ys[y0:y1], self.xs[:, x0:x1]
        mask = np.ones((y1 - y0, x1 - x0), bool) if shape is None else shape(ys, xs)
        pixels = np.broadcast_to(colour, (y1 - y0, x1 - x0, 3))
        if texture is not None:
            pixels = pixels * texture[y0:y1, x0:x1, None]
        self.image[y0:y1, x0:x1][mask] = np.clip(pixels[mask], 0, 255)
        self.label[y0:y1, x0:x1][mask] = cls


def _disc(cx: float, cy: float, radius: float) -> _Shape:
    return lambda ys, xs: (xs - cx) ** 2 + (ys - cy) ** 2 < radius * radius


def _at(field: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``field`` on the box spanned by integer pixel coordinates ``ys`` (column) and ``xs`` (row)."""
    return field[int(ys[0, 0]) : int(ys[-1, 0]) + 1, int(xs[0, 0]) : int(xs[0, -1]) + 1]
