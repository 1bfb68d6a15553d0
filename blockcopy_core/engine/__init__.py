"""Block-sparse execution engine with temporal feature propagation (BlockCopy).

``BlockSparseEngine`` runs an unchanged model on the executed blocks of each frame; ``ops`` holds the four
block movements (compiled kernels or their PyTorch twins in ``twins``).
"""

from .engine import BlockSparseEngine
from .geometry import BlockLayout, grid_shape
from .sites import UnsupportedOpError

__all__ = ["BlockLayout", "BlockSparseEngine", "UnsupportedOpError", "grid_shape"]
