"""Block-sparse execution engine with temporal feature propagation (BlockCopy).

``BlockSparseEngine`` runs an unchanged model on the executed blocks of each frame; ``ops`` holds the four
block movements and the resize of the model's output blocks straight into the output (compiled kernels or their
PyTorch twins in ``twins``).
"""

from .engine import BlockSparseEngine
from .geometry import BlockLayout, grid_shape
from .sites import UnsupportedOpError

__all__ = ["BlockLayout", "BlockSparseEngine", "UnsupportedOpError", "grid_shape"]
