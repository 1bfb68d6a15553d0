"""BlockCopy video semantic segmentation: models, data, metrics and the block-sparse engine.

Importable without Ray; the Ray job lives in ``jobs``.
"""

from .blockcopy import BlockCopyModel

__all__ = ["BlockCopyModel"]
