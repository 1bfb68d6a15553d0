"""Rendering a synthetic clip: a background strip, a camera path and moving sprites, composed per frame.

Static-camera clips show a fixed window; panning clips slide the window over a wider background strip. The
background is rendered once per clip, moving objects are pasted per frame, far to near. Every random draw
comes from a generator seeded by (seed, clip index), per-frame noise from (seed, clip index, frame), so the
same spec always gives bitwise identical frames and labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from blockcopy_core.constants import IGNORE_INDEX
from blockcopy_core.data.scene.background import Background
from blockcopy_core.data.scene.spec import SyntheticClipSpec
from blockcopy_core.data.scene.sprites import car, person, rider

_PIXEL_NOISE = 3  # per-frame sensor noise, uniform in [-3, 3] grey levels


def render_clip(spec: SyntheticClipSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(image HxWx3 uint8 RGB, trainIds HxW uint8)`` for each frame of the clip, lazily."""
    scene = _Scene(spec)
    for t in range(spec.num_frames):
        yield scene.frame(t)


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

        image, label = Background(rng, h, strip_width, self.ground_y, self.curb_y).render()
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
        np.add(noise, image, out=noise)  # in place: no int16 copy of the image, no temporary sum
        np.clip(noise, 0, 255, out=noise)
        return noise.astype(np.uint8), label

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
                rgb, label = car(rng, height, facing=direction)
                place(rgb, label, base, start_x(speed * direction, label.shape[1], first), speed * direction)
                first = False

        for _ in range(int(rng.integers(1, 5))):
            base = gy + (cy - gy) * rng.uniform(0.45, 0.95)
            speed = 0.0 if rng.random() < 0.3 else h * rng.uniform(0.002, 0.007) * rng.choice((-1, 1))
            rgb, label = person(rng, max(5, int(0.28 * h * scale(base))))
            place(rgb, label, base, start_x(speed, label.shape[1], False), speed)

        for _ in range(int(rng.integers(0, 3))):
            base = cy + 0.18 * road
            speed = h * rng.uniform(0.01, 0.03) * rng.choice((-1, 1))
            rgb, label = rider(rng, max(6, int(0.3 * h * scale(base))), motorcycle=rng.random() < 0.4)
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
