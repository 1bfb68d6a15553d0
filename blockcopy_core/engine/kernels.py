"""Loads the C++ (OpenMP) and CUDA block-movement kernels from ``csrc/`` through torch.utils.cpp_extension.

Built on first use into a cache directory (``BLOCKCOPY_EXTENSIONS_DIR``, default
``~/.cache/blockcopy/torch_extensions``) and reused afterwards; ``python -m blockcopy_core.engine.build`` builds
them ahead of time. ``BLOCKCOPY_KERNELS`` picks the implementation: ``auto`` (extension, else the PyTorch twins
with a one-line notice), ``twin`` (always the twins) or ``ext`` (the extension or an error).
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import torch

CSRC = Path(__file__).resolve().parents[2] / "csrc"
CPU_SOURCES = ("blockcopy_cpu.cpp",)
CUDA_SOURCES = ("blockcopy_cuda_bind.cpp", "blockcopy_cuda.cu")
MODES = ("auto", "twin", "ext")


def cache_dir() -> Path:
    root = os.environ.get("BLOCKCOPY_EXTENSIONS_DIR", str(Path.home() / ".cache" / "blockcopy" / "torch_extensions"))
    return Path(root).expanduser()


def kernel_mode() -> str:
    mode = os.environ.get("BLOCKCOPY_KERNELS", "auto")
    if mode not in MODES:
        raise ValueError(f"BLOCKCOPY_KERNELS={mode!r}; choose one of {MODES}")
    return mode


def build(cuda: bool) -> ModuleType:
    """Compile (or load from the cache directory) the CPU or CUDA kernels; raises when that fails."""
    from torch.utils.cpp_extension import load

    name, sources = ("blockcopy_cuda", CUDA_SOURCES) if cuda else ("blockcopy_cpu", CPU_SOURCES)
    missing = [s for s in sources if not (CSRC / s).is_file()]
    if missing:
        raise FileNotFoundError(f"kernel sources missing in {CSRC}: {missing}")
    build_dir = cache_dir() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    return load(
        name=name,
        sources=[str(CSRC / s) for s in sources],
        extra_cflags=["-O3", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        extra_cuda_cflags=["-O3"] if cuda else None,
        build_directory=str(build_dir),
        with_cuda=cuda,
        verbose=False,
    )


@cache
def _load(cuda: bool) -> ModuleType | None:
    name = "blockcopy_cuda" if cuda else "blockcopy_cpu"
    try:
        return build(cuda)
    except Exception as exc:  # no compiler, no nvcc, broken toolchain: fall back, loudly once
        if kernel_mode() == "ext":
            raise RuntimeError(f"building the {name} kernels failed: {exc}") from exc
        print(f"blockcopy: {name} kernels unavailable ({type(exc).__name__}), using the PyTorch twins", file=sys.stderr)
        return None


def extension(device: torch.device) -> ModuleType | None:
    """The compiled kernels for ``device``'s type, or None when the twins must be used."""
    if kernel_mode() == "twin" or device.type not in ("cpu", "cuda"):
        return None
    return _load(device.type == "cuda")
