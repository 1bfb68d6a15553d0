"""Build the block-movement kernels ahead of time: ``python -m blockcopy_core.engine.build``.

Builds the CPU extension, and the CUDA one when CUDA is available, into the cache directory
(``BLOCKCOPY_EXTENSIONS_DIR``, default ``~/.cache/blockcopy/torch_extensions``).
"""

from __future__ import annotations

import torch

from . import kernels


def main() -> None:
    kernels.build(cuda=False)
    print(f"built the CPU kernels in {kernels.cache_dir()}")
    if torch.cuda.is_available():
        kernels.build(cuda=True)
        print(f"built the CUDA kernels in {kernels.cache_dir()}")


if __name__ == "__main__":
    main()
