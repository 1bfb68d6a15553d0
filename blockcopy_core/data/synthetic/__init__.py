"""The synthetic clip source: procedural street-scene clips, labelled on every frame, and their exporter.

The renderer lives in :mod:`blockcopy_core.data.scene`; this package turns it into clip descriptors
(:func:`synthetic_clips`) and writes clips to disk (:func:`export_cityscapes`, :func:`export_demo`, and
``python -m blockcopy_core.data.synthetic``). The renderer's names are re-exported for convenience.
"""

from blockcopy_core.data.scene import SyntheticClipSpec, render_clip
from blockcopy_core.data.scene.classes import (
    BICYCLE,
    BUILDING,
    CAR,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
)
from blockcopy_core.data.synthetic.export import CITYSCAPES_SEQUENCE_LENGTH, export_cityscapes, export_demo, main
from blockcopy_core.data.synthetic.source import synthetic_clips

__all__ = [
    "SyntheticClipSpec", "render_clip", "synthetic_clips", "export_cityscapes", "export_demo", "main",
    "CITYSCAPES_SEQUENCE_LENGTH",
    "ROAD", "SIDEWALK", "BUILDING", "POLE", "TRAFFIC_LIGHT", "TRAFFIC_SIGN", "VEGETATION", "TERRAIN", "SKY",
    "PERSON", "RIDER", "CAR", "MOTORCYCLE", "BICYCLE",
]
