"""Colour jitter shared by the background and the sprites: every object gets its own shade of its class colour."""

from __future__ import annotations

import numpy as np

Colour = tuple[float, float, float]


def jitter(rng: np.random.Generator, colour: Colour, amount: float) -> np.ndarray:
    """``colour`` plus uniform noise in ``[-amount, amount]`` per channel (one draw of 3 values), clipped."""
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)
