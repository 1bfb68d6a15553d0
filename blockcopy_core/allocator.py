"""Keep freed memory in the process: the one allocator setting the job applies to itself.

glibc's malloc serves every large block (a feature map, an output) with a fresh ``mmap`` and returns it to the
OS on ``free``, so each frame page-faults its activations in again. Frames of a clip allocate the same sizes over
and over, so keeping freed memory for reuse removes the faults (on 2 CPU cores the job's static SwiftNet-RN18 ran
35-40% faster: docs/benchmarks.md, "The engine at 64 px blocks"); the process holds its peak instead of giving
memory back between frames. Equivalent to ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>`` set
before start, which a user would not know to set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # bytes of free heap top before glibc gives memory back (mallopt's largest int)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (no ``mmap`` per large block, no trimming); True when
    applied, False where the C library is not glibc (macOS, musl), which is left as it is."""
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
