"""The synthetic clip source: procedural street-scene clips, labelled on every frame, and their exporter.

The renderer lives in :mod:`blockcopy_core.data.scene`; this package turns it into clip descriptors
(:func:`synthetic_clips`) and writes clips to disk (:func:`export_cityscapes`, :func:`export_demo`, and
``python -m blockcopy_core.data.synthetic``) or a scene to a video file (:func:`write_synthetic_video`). The
renderer's spec and ``render_clip`` are re-exported for convenience.
"""

from blockcopy_core.data.scene import SyntheticClipSpec, render_clip
from blockcopy_core.data.synthetic.export import CITYSCAPES_SEQUENCE_LENGTH, export_cityscapes, export_demo, main
from blockcopy_core.data.synthetic.source import (
    EVAL_FIRST,
    TRAIN_FIRST,
    UNSEEN_FIRST,
    VAL_FIRST,
    WARMUP_FIRST,
    synthetic_clips,
)
from blockcopy_core.data.synthetic.video import write_synthetic_video

__all__ = [
    "SyntheticClipSpec", "render_clip", "synthetic_clips", "export_cityscapes", "export_demo", "main",
    "write_synthetic_video",
    "CITYSCAPES_SEQUENCE_LENGTH", "EVAL_FIRST", "WARMUP_FIRST", "TRAIN_FIRST", "VAL_FIRST", "UNSEEN_FIRST",
]
