"""BlockCopy video semantic segmentation: models, data, metrics and the block-sparse engine.

Importable without Ray; the Ray job lives in ``jobs`` (entry points) and ``pipeline`` (how clips run).
"""

from .blockcopy import BlockCopyModel
from .settings import BlockCopySettings

__all__ = ["BlockCopyModel", "BlockCopySettings"]
