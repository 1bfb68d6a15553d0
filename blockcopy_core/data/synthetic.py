"""Procedural street-scene videos with Cityscapes trainId labels on every frame.

A clip is described by a small picklable :class:`SyntheticClipSpec`; :func:`render_clip` turns it into frames,
so a Ray actor can make its own pixels and nothing heavy travels from the driver. The same spec always gives
bitwise identical frames and labels (every random draw comes from a generator seeded by (seed, clip index)).

The scene is a side view of a street laid out in horizontal bands like a Cityscapes frame: sky on
top, buildings with window grids in the middle band, trees, hedges and grass in front of them, a tiled
sidewalk with poles carrying traffic signs or lights, and an asphalt road with lane markings at the bottom.
Cars drive in two lanes (some parked, some slow, some fast), pedestrians walk or stand on the sidewalk and
riders on bicycles or motorcycles ride near the curb; nearer objects (lower base line) are larger and drawn
over farther ones. Static-camera clips show a fixed window; panning clips slide the window over a wider
background strip. The background is rendered once per clip, moving objects are pasted per frame as sprites.

Also a CLI that exports clips to the Cityscapes video layout or to a demo folder::

    python -m blockcopy_core.data.synthetic --export-cityscapes DIR --num-clips 4 --clip-length 20
    python -m blockcopy_core.data.synthetic --export-demo DIR --ext jpg
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from blockcopy_core.constants import IGNORE_INDEX, TRAIN_ID_TO_LABEL_ID
from blockcopy_core.data.clips import Clip

ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY = 0, 1, 2, 5, 6, 7, 8, 9, 10
PERSON, RIDER, CAR, MOTORCYCLE, BICYCLE = 11, 12, 13, 17, 18

CITYSCAPES_SEQUENCE_LENGTH = 20  # the annotated frame is the 20th of a Cityscapes snippet (frame number 19)
_STRIDE = 32  # heights and widths must be multiples of the network stride
_PIXEL_NOISE = 3  # per-frame sensor noise, uniform in [-3, 3] grey levels
_SAVE_OPTIONS = dict(compress_level=1, quality=95)  # fast PNG (still lossless), high-quality JPEG

Colour = tuple[float, float, float]
_Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (ys column, xs row) pixel coordinates -> mask


@dataclass(frozen=True)
class SyntheticClipSpec:
    """Everything needed to render one synthetic clip (a few integers, cheap to pickle)."""

    seed: int
    clip_index: int
    height: int
    width: int
    num_frames: int
    panning: bool

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if value <= 0 or value % _STRIDE:
                raise ValueError(f"synthetic {name} must be a positive multiple of {_STRIDE}, got {value}")
        if self.num_frames < 1:
            raise ValueError(f"synthetic num_frames must be >= 1, got {self.num_frames}")
        if self.seed < 0 or self.clip_index < 0:
            raise ValueError(f"synthetic seed and clip_index must be >= 0, got {self.seed}, {self.clip_index}")

    @property
    def name(self) -> str:
        """Stable human-readable id, e.g. ``s0_c3``."""
        return f"s{self.seed}_c{self.clip_index}"


def synthetic_clips(
    num_clips: int, clip_length: int, height: int, width: int, seed: int, first_clip: int = 0
) -> list[Clip]:
    """Clip descriptors for clips ``first_clip .. first_clip + num_clips - 1`` of the seeded video set.

    Static and panning clips alternate (the phase depends on the seed), so any range is about half each.
    """
    if num_clips < 1:
        raise ValueError(f"synthetic source needs num_clips >= 1, got {num_clips}")
    clips = []
    for index in range(first_clip, first_clip + num_clips):
        spec = SyntheticClipSpec(seed, index, height, width, clip_length, panning=(index + seed) % 2 == 1)
        names = tuple(f"synthetic/{spec.name}/{t:06d}" for t in range(clip_length))
        clips.append(
            Clip(
                clip_id=f"synthetic_{spec.name}",
                source="synthetic",
                frame_paths=names,
                label_paths=(None,) * clip_length,
                synthetic=spec,
            )
        )
    return clips


def render_clip(spec: SyntheticClipSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(image HxWx3 uint8 RGB, trainIds HxW uint8)`` for each frame of the clip, lazily."""
    scene = _Scene(spec)
    for t in range(spec.num_frames):
        yield scene.frame(t)


# ----------------------------------------------------------------------------------------------- scene


@dataclass
class _Sprite:
    """A moving object: pixels, trainIds (255 = transparent), base line and motion in strip coordinates."""

    rgb: np.ndarray
    label: np.ndarray
    top: int
    x0: float
    speed: float  # pixels per frame, signed

    @property
    def base(self) -> int:
        return self.top + self.label.shape[0]


class _Scene:
    """One clip's world: a pre-rendered background strip, a camera path and moving sprites."""

    def __init__(self, spec: SyntheticClipSpec) -> None:
        self.spec = spec
        rng = np.random.default_rng([spec.seed, spec.clip_index])
        h, w = spec.height, spec.width
        self.ground_y = int(h * rng.uniform(0.52, 0.60))  # building base = sidewalk top
        self.curb_y = self.ground_y + max(2, int(h * rng.uniform(0.09, 0.13)))  # sidewalk bottom = road top
        self.brightness = rng.uniform(0.85, 1.1)

        if spec.panning:
            speed = h * rng.uniform(0.006, 0.016)
            direction = 1 if rng.random() < 0.5 else -1
            travel = math.ceil(speed * (spec.num_frames - 1))
            offsets = [round(speed * t) for t in range(spec.num_frames)]
            self.camera = offsets if direction > 0 else [travel - o for o in offsets]
        else:
            travel = 0
            self.camera = [0] * spec.num_frames
        strip_width = w + travel

        image, label = _Background(rng, h, strip_width, self.ground_y, self.curb_y).render()
        self.background = np.clip(image * self.brightness, 0, 255).astype(np.uint8)
        self.background_label = label
        self.sprites = sorted(self._make_sprites(rng, strip_width), key=lambda s: s.base)
        self.noise_seed = [spec.seed, spec.clip_index, 1]

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.spec.height, self.spec.width
        cam = self.camera[t]
        image = self.background[:, cam : cam + w].copy()
        label = self.background_label[:, cam : cam + w].copy()
        for sprite in self.sprites:  # sorted far to near: near objects end on top
            _paste(image, label, sprite, round(sprite.x0 + sprite.speed * t) - cam)
        noise = np.random.default_rng([*self.noise_seed, t]).integers(
            -_PIXEL_NOISE, _PIXEL_NOISE + 1, size=(h, w, 3), dtype=np.int16
        )
        noisy = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        return noisy, label

    def _make_sprites(self, rng: np.random.Generator, strip_width: int) -> list[_Sprite]:
        h, w = self.spec.height, self.spec.width
        gy, cy = self.ground_y, self.curb_y
        frames = self.spec.num_frames
        cam0 = self.camera[0]
        sprites: list[_Sprite] = []

        def scale(base: float) -> float:  # perspective: lower on screen = nearer = larger
            return 0.55 + 0.55 * (base - gy) / (h - gy)

        def place(rgb: np.ndarray, label: np.ndarray, base: float, x0: float, speed: float) -> None:
            rgb = np.clip(rgb * self.brightness, 0, 255).astype(np.uint8)
            sprites.append(_Sprite(rgb, label, int(base) - label.shape[0], x0, speed))

        def start_x(speed: float, width: int, visible: bool) -> float:
            """A start position; ``visible`` keeps the object inside the view for most of the clip."""
            if visible:
                travel = speed * (frames - 1)
                lo, hi = cam0 - min(0.0, travel), cam0 + w - width - max(0.0, travel)
                if hi > lo:
                    return rng.uniform(lo, hi)
                return cam0 + (w - width) / 2 - travel / 2
            return rng.uniform(-0.3 * w, strip_width + 0.1 * w)

        road = h - cy
        lanes = ((cy + 0.42 * road, -1), (h - 0.02 * road, 1))  # (base line, driving direction)
        first = True
        for base, direction in lanes:
            for _ in range(int(rng.integers(1, 3))):
                kind = rng.random()
                if first or kind < 0.4:
                    speed = h * rng.uniform(0.025, 0.05)
                elif kind < 0.75:
                    speed = h * rng.uniform(0.005, 0.015)
                else:
                    speed = 0.0  # parked
                height = max(4, int(0.17 * h * scale(base)))
                rgb, label = _car(rng, height, facing=direction)
                place(rgb, label, base, start_x(speed * direction, label.shape[1], first), speed * direction)
                first = False

        for _ in range(int(rng.integers(1, 5))):
            base = gy + (cy - gy) * rng.uniform(0.45, 0.95)
            speed = 0.0 if rng.random() < 0.3 else h * rng.uniform(0.002, 0.007) * rng.choice((-1, 1))
            rgb, label = _person(rng, max(5, int(0.28 * h * scale(base))))
            place(rgb, label, base, start_x(speed, label.shape[1], False), speed)

        for _ in range(int(rng.integers(0, 3))):
            base = cy + 0.18 * road
            speed = h * rng.uniform(0.01, 0.03) * rng.choice((-1, 1))
            rgb, label = _rider(rng, max(6, int(0.3 * h * scale(base))), motorcycle=rng.random() < 0.4)
            if speed < 0:
                rgb, label = rgb[:, ::-1], label[:, ::-1]
            place(rgb, label, base, start_x(speed, label.shape[1], False), speed)
        return sprites


def _paste(image: np.ndarray, label: np.ndarray, sprite: _Sprite, x: int) -> None:
    """Draw ``sprite`` with its left edge at column ``x`` of the view (clipped to the frame)."""
    sh, sw = sprite.label.shape
    x0, x1 = max(x, 0), min(x + sw, image.shape[1])
    y0, y1 = max(sprite.top, 0), min(sprite.top + sh, image.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    sub_label = sprite.label[y0 - sprite.top : y1 - sprite.top, x0 - x : x1 - x]
    opaque = sub_label != IGNORE_INDEX
    image[y0:y1, x0:x1][opaque] = sprite.rgb[y0 - sprite.top : y1 - sprite.top, x0 - x : x1 - x][opaque]
    label[y0:y1, x0:x1][opaque] = sub_label[opaque]


# ------------------------------------------------------------------------------------------ background


def _jitter(rng: np.random.Generator, colour: Colour, amount: float) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid with spacing ``cell`` pixels, upsampled bilinearly."""
    cell = max(1, int(cell))
    gh, gw = height // cell + 2, width // cell + 2
    grid = Image.fromarray(rng.random((gh, gw), dtype=np.float32))
    return np.asarray(grid.resize((gw * cell, gh * cell), Image.Resampling.BILINEAR))[:height, :width]


class _Background:
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
        top, horizon = _jitter(rng, (70, 125, 190), 15), _jitter(rng, (175, 200, 225), 15)
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
        colour = _jitter(rng, self.BUILDING_COLOURS[int(rng.integers(len(self.BUILDING_COLOURS)))], 12)
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
        glass = np.where(lit[..., None], _jitter(rng, (195, 185, 140), 15), _jitter(rng, (55, 65, 80), 10))
        pixels = np.where(window[..., None], glass, pixels)
        self.image[top : self.gy, x0:x1] = pixels
        self.label[top : self.gy, x0:x1] = BUILDING

    def _ground(self) -> None:
        rng, h, w, gy, cy = self.rng, self.h, self.w, self.gy, self.cy
        # sidewalk: paving tiles, a lighter curb stone along the road
        tile = max(3.0, 0.045 * h)
        ys, xs = self.ys[gy:cy], self.xs
        joints = ((ys - gy) % tile < 1) | (xs % (2 * tile) < 1)
        paving = _jitter(rng, (150, 140, 145), 12)
        self.image[gy:cy] = np.where(joints[..., None], paving * 0.8, paving)
        curb = max(1, int(0.012 * h))
        self.image[cy - curb : cy] = _jitter(rng, (185, 185, 180), 8)
        self.label[gy:cy] = SIDEWALK
        if rng.random() < 0.5:  # a grass strip between the houses and the sidewalk
            grass = max(1, int((cy - gy) * rng.uniform(0.15, 0.3)))
            noise = _value_noise(rng, grass, w, 2)[..., None]
            self.image[gy : gy + grass] = _jitter(rng, (110, 150, 70), 12) * (0.8 + 0.4 * noise)
            self.label[gy : gy + grass] = TERRAIN

        # road: asphalt grain, lighter towards the camera, dashed lane marking, solid edge line
        road_ys = self.ys[cy:]
        grain = _value_noise(rng, h - cy, w, 1.5)[..., None]
        asphalt = _jitter(rng, (78, 78, 82), 8)
        self.image[cy:] = asphalt * (0.9 + 0.15 * (road_ys[..., None] - cy) / (h - cy)) + 16 * (grain - 0.5)
        self.label[cy:] = ROAD
        paint = _jitter(rng, (225, 225, 215), 8)
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
                           _jitter(rng, (85, 68, 50), 10), VEGETATION)

            def crown(ys: np.ndarray, xs: np.ndarray, cx=cx, cyc=cyc, rx=rx, ry=ry) -> np.ndarray:
                r = ((xs - cx) / rx) ** 2 + ((ys - cyc) / ry) ** 2
                return r < 1 + 0.6 * (_at(leaves, ys, xs) - 0.5)

            self._fill_box(int(cyc - 1.3 * ry), int(cyc + 1.3 * ry) + 1, int(cx - 1.3 * rx), int(cx + 1.3 * rx) + 1,
                           crown, _jitter(rng, (80, 125, 45), 18), VEGETATION, shading)
        if rng.random() < 0.6:  # a hedge along the house fronts
            x0 = int(rng.uniform(0, 0.7) * self.w)
            x1 = min(self.w, x0 + int(h * rng.uniform(0.3, 0.8)))
            height = h * rng.uniform(0.03, 0.06)

            def hedge(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
                return ys > gy - height * (0.6 + 0.8 * _at(leaves, ys, xs)[:1])

            self._fill_box(int(gy - 1.5 * height), gy, x0, x1, hedge, _jitter(rng, (70, 115, 40), 12), VEGETATION,
                           shading)

    def _poles(self) -> None:
        rng, h = self.rng, self.h
        for _ in range(int(self.w / h * rng.uniform(0.6, 1.4)) + 1):
            x = int(rng.uniform(0, self.w))
            width = max(1, round(0.009 * h))
            base = self.gy + max(1, int(0.02 * h))
            top = int(base - h * rng.uniform(0.24, 0.38))
            cylinder = np.broadcast_to(0.75 + 0.5 * (self.xs - x) / width, (h, self.w))  # lit from the right
            self._fill_box(top, base, x, x + width, None, _jitter(rng, (130, 130, 135), 15), POLE, cylinder)
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
                self._fill_box(*box, _disc(cx, cyc, radius), _jitter(rng, colour, 10), TRAFFIC_SIGN)
        elif shape == 1:
            def square(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
                return (np.abs(xs - cx) < r) & (np.abs(ys - cyc) < r)

            self._fill_box(*box, square, _jitter(rng, (30, 70, 170), 10), TRAFFIC_SIGN)
        else:
            def diamond(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
                return np.abs(xs - cx) + np.abs(ys - cyc) < 1.3 * r

            self._fill_box(*box, diamond, _jitter(rng, (230, 190, 40), 10), TRAFFIC_SIGN)

    def _traffic_light(self, cx: float, top: int) -> None:
        """A dark housing on a pole top with one of its three lamps lit."""
        rng, h = self.rng, self.h
        half_w = max(1.0, 0.014 * h)
        box_h = 6 * half_w
        y0 = top - box_h + half_w
        box = (int(y0), int(y0 + box_h) + 1, int(cx - half_w), int(cx + half_w) + 2)

        def housing(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
            return (np.abs(xs - cx) <= half_w) & (ys >= y0) & (ys < y0 + box_h)

        self._fill_box(*box, housing, _jitter(rng, (35, 35, 38), 5), TRAFFIC_LIGHT)
        lit = int(rng.integers(3))
        lamp = ((230, 40, 30), (240, 170, 20), (40, 220, 90))[lit]
        self._fill_box(*box, _disc(cx, y0 + box_h * (1 + 2 * lit) / 6, 0.7 * half_w), _jitter(rng, lamp, 10),
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


# --------------------------------------------------------------------------------------------- sprites


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


def _car(rng: np.random.Generator, height: int, facing: int) -> tuple[np.ndarray, np.ndarray]:
    """A side view of a car ``height`` pixels tall, facing right (``facing`` = 1) or left (-1)."""
    length = 2.3
    c = _Canvas(height, max(2, round(length * height)))
    x, y = c.x / length, c.y  # x as a fraction of the car's length
    paint = _jitter(rng, _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))], 12)
    shade = 1.1 - 0.35 * y
    body = (y >= 0.38 + 0.12 * np.clip((x - 0.82) / 0.18, 0, 1)) & (y <= 0.86) & (x >= 0.01) & (x <= 0.99)
    slope = np.clip((0.42 - y) / 0.37, 0, 1)
    cabin = (y >= 0.05) & (y < 0.42) & (x >= 0.2 + 0.1 * slope) & (x <= 0.74 - 0.16 * slope)
    c.paint(body | cabin, paint, CAR, shade)
    glass = cabin & (y >= 0.1) & (y < 0.38) & (x >= 0.23 + 0.1 * slope) & (x <= 0.71 - 0.16 * slope)
    c.paint(glass & (np.abs(x - 0.47) > 0.015), _jitter(rng, (45, 55, 70), 8), CAR, 1.2 - 0.5 * y)
    c.paint((x > 0.965) & (y > 0.5) & (y < 0.6), _jitter(rng, (240, 230, 185), 8), CAR)
    c.paint((x < 0.03) & (y > 0.44) & (y < 0.54), _jitter(rng, (190, 25, 25), 8), CAR)
    for wx in (0.2, 0.8):
        c.paint(c.disc(wx * length, 0.83, 0.16), np.full(3, 25, np.float32), CAR)
        c.paint(c.disc(wx * length, 0.83, 0.07), np.full(3, 140, np.float32), CAR)
    rgb, label = c.result()
    return (rgb, label) if facing > 0 else (rgb[:, ::-1], label[:, ::-1])


def _person(rng: np.random.Generator, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A standing or walking person ``height`` pixels tall, seen from the side or front."""
    c = _Canvas(height, max(2, round(0.38 * height)))
    x, y = c.x - 0.19, c.y  # x relative to the body axis
    shirt = _jitter(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 15)
    trousers = _jitter(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 15) * 0.7
    c.paint((np.abs(x) < 0.06) & (y > 0.14) & (y < 0.5) | (np.abs(x) < 0.11) & (y > 0.16) & (y < 0.46),
            shirt, PERSON, 1.1 - 0.3 * y)
    c.paint((np.abs(np.abs(x) - 0.04) < 0.035) & (y >= 0.5) & (y < 0.96), trousers, PERSON)
    c.paint((np.abs(np.abs(x) - 0.045) < 0.04) & (y >= 0.96), np.full(3, 30, np.float32), PERSON)
    c.paint(c.disc(0.19, 0.075, 0.065), _jitter(rng, _SKIN[int(rng.integers(len(_SKIN)))], 10), PERSON)
    c.paint(c.disc(0.19, 0.06, 0.06) & (y < 0.06), _jitter(rng, (50, 35, 25), 15), PERSON)
    return c.result()


def _rider(rng: np.random.Generator, height: int, motorcycle: bool) -> tuple[np.ndarray, np.ndarray]:
    """A rider on a bicycle or motorcycle, ``height`` pixels tall, riding to the right."""
    c = _Canvas(height, max(2, round(0.95 * height)))
    wheels = ((0.19, 0.8), (0.76, 0.8))
    if motorcycle:
        for wx, wy in wheels:
            c.paint(c.disc(wx, wy, 0.17), np.full(3, 25, np.float32), MOTORCYCLE)
        body = ((c.x - 0.47) / 0.3) ** 2 + ((c.y - 0.64) / 0.11) ** 2 < 1
        c.paint(body, _jitter(rng, _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))], 15), MOTORCYCLE,
                1.1 - 0.3 * c.y)
        c.paint(c.segment((0.7, 0.62), (0.76, 0.8), 0.04), np.full(3, 90, np.float32), MOTORCYCLE)
        hands = (0.66, 0.5)
    else:
        frame_colour = _jitter(rng, ((30, 90, 160), (180, 40, 40), (40, 40, 40))[int(rng.integers(3))], 15)
        tyre = np.full(3, 30, np.float32)
        for wx, wy in wheels:
            c.paint(c.disc(wx, wy, 0.17) & ~c.disc(wx, wy, 0.13), tyre, BICYCLE)
        seat, handle, crank = (0.38, 0.55), (0.7, 0.52), (0.45, 0.8)
        tubes = (wheels[0], seat), (seat, crank), (crank, wheels[0]), (seat, handle), (crank, handle), \
            (handle, wheels[1])
        for a, b in tubes:
            c.paint(c.segment(a, b, 0.035), frame_colour, BICYCLE)
        hands = handle
    clothes = _jitter(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 15)
    hip, shoulder, knee, foot = (0.38, 0.52), (0.5, 0.17), (0.55, 0.62), (0.46, 0.8)
    c.paint(c.segment(hip, shoulder, 0.13), clothes, RIDER, 1.1 - 0.3 * c.y)
    c.paint(c.segment(shoulder, hands, 0.05), clothes, RIDER)
    trousers = _jitter(rng, (45, 45, 55), 10)
    c.paint(c.segment(hip, knee, 0.07) | c.segment(knee, foot, 0.06), trousers, RIDER)
    c.paint(c.disc(0.52, 0.075, 0.065), _jitter(rng, _SKIN[int(rng.integers(len(_SKIN)))], 10), RIDER)
    return c.result()


# ---------------------------------------------------------------------------------------------- export


def _specs(clips: Sequence[Clip]) -> list[SyntheticClipSpec]:
    specs = [clip.synthetic for clip in clips]
    missing = [clip.clip_id for clip, spec in zip(clips, specs, strict=True) if spec is None]
    if missing:
        raise ValueError(f"only synthetic clips can be exported; not synthetic: {', '.join(missing)}")
    if not specs:
        raise ValueError("no clips to export")
    return specs  # type: ignore[return-value]


def export_cityscapes(root: str | Path, clips: Sequence[Clip], split: str = "val") -> None:
    """Write clips in the Cityscapes video layout under ``root``, one sequence per clip.

    City ``synth<seed>``, sequence number = clip index; a clip's frames become sequence frames
    ``20 - n .. 19`` and its last frame the annotated frame (``leftImg8bit`` + ``gtFine`` labelIds),
    exactly like a Cityscapes snippet, so the Cityscapes loader reads them back.
    """
    root = Path(root)
    label_ids = np.zeros(256, np.uint8)  # trainId -> labelId; ignore -> 0 ("unlabeled")
    label_ids[: len(TRAIN_ID_TO_LABEL_ID)] = TRAIN_ID_TO_LABEL_ID
    for spec in _specs(clips):
        if spec.num_frames > CITYSCAPES_SEQUENCE_LENGTH:
            raise ValueError(f"clip {spec.name} has {spec.num_frames} frames; the Cityscapes layout holds at "
                             f"most {CITYSCAPES_SEQUENCE_LENGTH} before the annotated frame")
        city = f"synth{spec.seed}"
        dirs = {kind: root / kind / split / city for kind in ("leftImg8bit_sequence", "leftImg8bit", "gtFine")}
        for folder in dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        first = CITYSCAPES_SEQUENCE_LENGTH - spec.num_frames
        for t, (image, train_ids) in enumerate(render_clip(spec)):
            stem = f"{city}_{spec.clip_index:06d}_{first + t:06d}"
            Image.fromarray(image).save(dirs["leftImg8bit_sequence"] / f"{stem}_leftImg8bit.png", **_SAVE_OPTIONS)
            if t == spec.num_frames - 1:
                Image.fromarray(image).save(dirs["leftImg8bit"] / f"{stem}_leftImg8bit.png", **_SAVE_OPTIONS)
                Image.fromarray(label_ids[train_ids]).save(dirs["gtFine"] / f"{stem}_gtFine_labelIds.png",
                                                           **_SAVE_OPTIONS)


def export_demo(folder: str | Path, clips: Sequence[Clip], ext: str = "png") -> None:
    """Write the clips' frames as images ``<clip_id>/frame<t>.<ext>`` (unpadded numbers: natural sort order)."""
    if ext.lower() not in ("png", "jpg", "jpeg"):
        raise ValueError(f"demo export extension must be png, jpg or jpeg, got {ext!r}")
    for clip, spec in zip(clips, _specs(clips), strict=True):
        out = Path(folder) / clip.clip_id
        out.mkdir(parents=True, exist_ok=True)
        for t, (image, _) in enumerate(render_clip(spec)):
            Image.fromarray(image).save(out / f"frame{t}.{ext}", **_SAVE_OPTIONS)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--export-cityscapes", metavar="DIR", help="write the Cityscapes video layout here")
    target.add_argument("--export-demo", metavar="DIR", help="write a folder of images here")
    parser.add_argument("--num-clips", type=int, default=10)
    parser.add_argument("--first-clip", type=int, default=0)
    parser.add_argument("--clip-length", type=int, default=CITYSCAPES_SEQUENCE_LENGTH)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="val", help="Cityscapes split folder name")
    parser.add_argument("--ext", default="png", help="demo image format: png or jpg")
    args = parser.parse_args(argv)
    clips = synthetic_clips(args.num_clips, args.clip_length, args.height, args.width, args.seed, args.first_clip)
    if args.export_cityscapes:
        export_cityscapes(args.export_cityscapes, clips, args.split)
    else:
        export_demo(args.export_demo, clips, args.ext)


if __name__ == "__main__":
    main()
