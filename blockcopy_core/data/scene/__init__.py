"""Procedural street-scene videos with Cityscapes trainId labels on every frame.

A clip is described by a small picklable :class:`SyntheticClipSpec`; :func:`render_clip` turns it into frames,
so a Ray actor can make its own pixels and nothing heavy travels from the driver. The same spec always gives
bitwise identical frames and labels.

The scene is a side view of a street laid out in horizontal bands like a Cityscapes frame: sky on top,
buildings with window grids in the middle band, trees, hedges and grass in front of them, a tiled sidewalk
with poles carrying traffic signs or lights, and an asphalt road with lane markings at the bottom. Cars drive
in two lanes (some parked, some slow, some fast), pedestrians walk or stand on the sidewalk and riders on
bicycles or motorcycles ride near the curb; nearer objects (lower base line) are larger and drawn over
farther ones. This package knows nothing of clips or files; :mod:`blockcopy_core.data.synthetic` makes it a
clip source.
"""

from blockcopy_core.data.scene.render import render_clip
from blockcopy_core.data.scene.spec import SyntheticClipSpec

__all__ = ["SyntheticClipSpec", "render_clip"]
