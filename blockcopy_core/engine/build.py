"""Make the block-movement kernels ready before a run: ``python -m blockcopy_core.engine.build``.

For the CPU kernels, and the CUDA ones when CUDA is available, says which prebuilt module (``pip install``) will
be used, or else builds the first-use kernels now into their cache folder (``kernels.build_dir``), so that no
job pays for the build or waits on another's.
"""

from __future__ import annotations

import torch

from . import kernels


def main() -> None:
    for cuda in (False, True) if torch.cuda.is_available() else (False,):
        spec = kernels.kernels_for(cuda)
        module = kernels.prebuilt(spec)
        if module is None:
            module = kernels.build(cuda)
            print(f"built the {spec.name} kernels: {module.__file__}")
        else:
            print(f"the {spec.name} kernels are prebuilt: {module.__file__}")


if __name__ == "__main__":
    main()
