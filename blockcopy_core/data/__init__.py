"""Video clips for segmentation: Cityscapes sequences, demo folders and a procedural street-scene generator.

A clip descriptor (:class:`Clip`) is small and picklable; frames are loaded or generated where they are used
(:func:`iter_frames`). :mod:`~blockcopy_core.data.transforms` turns frames into network inputs.

Layering (each module imports only those above it): ``scene`` (the renderer) -> ``clips`` (descriptors) ->
``loading``, ``cityscapes``, ``demo``, ``synthetic`` (sources and exporter) -> ``catalog`` (:func:`build_clips`).
"""

from blockcopy_core.data.catalog import build_clips
from blockcopy_core.data.clips import Clip, Frame
from blockcopy_core.data.errors import FrameReadError
from blockcopy_core.data.loading import iter_frames, load_image

__all__ = ["Clip", "Frame", "FrameReadError", "build_clips", "iter_frames", "load_image"]
