"""The CUDA kernels of ``csrc/blockcopy_cuda.cu`` run on the CPU, so that their arithmetic is tested without a GPU.

The .cu becomes host C++: the CUDA keywords go, and each launch ``kernel<<<grid, block, 0, stream>>>(args)`` runs
every thread of every block in turn. The kernels share nothing between threads and never synchronise, so one
thread after another computes what the GPU does. ``cuda_emulation_bind.cpp`` binds the launchers as the CUDA
binding does, on CPU tensors. Launch limits, speed and the binding itself still need a GPU.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from types import ModuleType

from torch.utils.cpp_extension import load

from blockcopy_core.engine import kernels

HERE = Path(__file__).resolve().parent
BINDING = HERE / "cuda_emulation_bind.cpp"

PRELUDE = """\
#include <cstdint>
#include <functional>
#define __global__
#define __device__
struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef void* cudaStream_t;
static dim3 blockIdx, threadIdx, blockDim, gridDim;
static inline int atomicOr(int* p, int v) { const int old = *p; *p |= v; return old; }
static inline int cudaGetLastError() { return 0; }
static const int cudaErrorInvalidValue = 1;
// Every thread of every block, one after another.
static void emulate(dim3 grid, dim3 block, const std::function<void()>& thread) {
  gridDim = grid;
  blockDim = block;
  for (unsigned int g = 0; g < grid.x; ++g) {
    blockIdx = dim3(g);
    for (unsigned int ty = 0; ty < block.y; ++ty) {
      for (unsigned int tx = 0; tx < block.x; ++tx) {
        threadIdx = dim3(tx, ty);
        thread();
      }
    }
  }
}
"""
LAUNCHER = re.compile(r"^int blockcopy_cuda_\w+\(.*?\);$", re.M | re.S)  # a launcher's declaration
LAUNCHERS_MARK = "// @LAUNCHERS@ (the launchers as blockcopy_cuda_bind.cpp declares them)"
LAUNCH = re.compile(r"^(?P<indent>[ \t]*)(?P<kernel>[\w:<>, ]+?)<<<(?P<config>.*?)>>>\(", re.M | re.S)
CONFIG_COMMA = re.compile(r",(?![^()]*\))")  # a comma outside parentheses


def host_source(cuda_source: str) -> str:
    """``cuda_source`` with its launches emulated: host C++ that g++ compiles."""
    if "#include <cuda_runtime.h>" not in cuda_source:
        raise ValueError("expected the .cu to include <cuda_runtime.h>, which the emulation replaces")
    source = cuda_source.replace("#include <cuda_runtime.h>", PRELUDE)
    pieces, start = [], 0
    for launch in LAUNCH.finditer(source):
        grid, block = (part.strip() for part in CONFIG_COMMA.split(launch["config"])[:2])
        depth, end = 1, launch.end()
        while depth:  # the closing parenthesis of the launch's arguments
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        arguments = source[launch.end() : end - 1]
        call = f"{launch['kernel']}({arguments});"
        pieces.append(source[start : launch.start()])
        pieces.append(f"{launch['indent']}emulate(dim3({grid}), dim3({block}), [&] {{ {call} }})")
        start = end
    if not pieces:
        raise ValueError("no kernel launch found in the .cu")
    return "".join(pieces) + source[start:]


def binding_source() -> str:
    """``cuda_emulation_bind.cpp`` with the launchers declared as the CUDA binding declares them."""
    declarations = LAUNCHER.findall((kernels.CSRC / "blockcopy_cuda_bind.cpp").read_text())
    if len(declarations) != 3:
        raise ValueError(f"expected 3 launcher declarations in blockcopy_cuda_bind.cpp, found {len(declarations)}")
    template = BINDING.read_text()
    if LAUNCHERS_MARK not in template:
        raise ValueError(f"{BINDING.name} lacks the line {LAUNCHERS_MARK!r}")
    return template.replace(LAUNCHERS_MARK, "\n".join(declarations))


@functools.cache
def build(cache: Path) -> ModuleType:
    """The emulated kernels with the binding's functions, built (or reused) in ``cache`` under the sources' hash;
    once per process."""
    sources = {"emulated_cuda.cpp": host_source((kernels.CSRC / "blockcopy_cuda.cu").read_text()),
               "emulated_bind.cpp": binding_source()}
    key = hashlib.sha256("".join(sources.values()).encode()).hexdigest()[:16]
    folder = cache / f"emulated_cuda-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (folder / name).write_text(text)
    return load(name="blockcopy_emulated_cuda", sources=[str(folder / name) for name in sources],
                build_directory=str(folder), extra_cflags=["-O1"], verbose=False)
