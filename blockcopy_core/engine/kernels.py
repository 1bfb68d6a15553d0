"""Finds the compiled C++ (OpenMP) and CUDA block-movement kernels of ``csrc/``, or says the twins must run.

In order: the module ``pip install`` prebuilt (``blockcopy_core._kernels_cpu`` / ``_kernels_cuda``) when its key
file says it was built from these sources for this torch; else a first-use build by torch.utils.cpp_extension
into ``cache_dir() / "<name>-<key>"`` (the key hashes the sources, flags, torch and Python, so checkouts and
versions never build over each other), one build per folder at a time under a lock whose wait is bounded; else
the PyTorch twins, after a one-line notice. ``BLOCKCOPY_KERNELS`` picks: ``auto`` (that order), ``twin`` (always
the twins) or ``ext`` (compiled kernels or an error).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import importlib.util
import os
import shutil
import socket
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import torch

CSRC = Path(__file__).resolve().parents[2] / "csrc"
MODES = ("auto", "twin", "ext")
CXX_FLAGS = ("-O3", "-fopenmp", "-g0")  # -g0: setuptools adds Python's CFLAGS, whose -g makes the module 30x larger
LD_FLAGS = ("-fopenmp",)
NVCC_FLAGS = ("-O3",)
DEFAULT_BUILD_WAIT_S = 120.0
LOCK_NAME = "blockcopy-build.lock"
POLL_S = 0.1


class Kernels(NamedTuple):
    """One compiled module: its first-use build name, the module ``pip install`` prebuilds, its sources."""

    name: str
    prebuilt: str
    sources: tuple[str, ...]
    cuda: bool


CPU = Kernels("blockcopy_cpu", "blockcopy_core._kernels_cpu", ("blockcopy_cpu.cpp",), False)
CUDA = Kernels("blockcopy_cuda", "blockcopy_core._kernels_cuda", ("blockcopy_cuda_bind.cpp", "blockcopy_cuda.cu"), True)


class BuildLockTimeout(TimeoutError):
    """Another live process held the build lock for longer than the wait bound."""


def kernels_for(cuda: bool) -> Kernels:
    return CUDA if cuda else CPU


def kernel_mode() -> str:
    mode = os.environ.get("BLOCKCOPY_KERNELS", "auto")
    if mode not in MODES:
        raise ValueError(f"BLOCKCOPY_KERNELS={mode!r}; choose one of {MODES}")
    return mode


def build_wait_s() -> float:
    """How long to wait for another process's build (``BLOCKCOPY_BUILD_WAIT_S``, default 120 s)."""
    value = os.environ.get("BLOCKCOPY_BUILD_WAIT_S", str(DEFAULT_BUILD_WAIT_S))
    try:
        return max(float(value), 0.0)
    except ValueError:
        raise ValueError(f"BLOCKCOPY_BUILD_WAIT_S={value!r} is not a number of seconds") from None


def cache_dir() -> Path:
    root = os.environ.get("BLOCKCOPY_EXTENSIONS_DIR", str(Path.home() / ".cache" / "blockcopy" / "torch_extensions"))
    return Path(root).expanduser()


def notice(message: str) -> None:
    print(f"blockcopy: {message}", file=sys.stderr, flush=True)


def read_sources(kernels: Kernels) -> dict[str, bytes]:
    """The kernel sources in ``CSRC``, by file name."""
    paths = [CSRC / s for s in kernels.sources]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"kernel sources missing in {CSRC}: {missing}")
    return {p.name: p.read_bytes() for p in paths}


def source_key(sources: dict[str, bytes]) -> str:
    """Hash of everything a compiled module depends on: its sources and flags, and the torch and Python (their
    versions and where they live: a build's commands name their headers) it is built for."""
    digest = hashlib.sha256()
    context = (torch.__version__, str(torch.version.cuda), str(Path(torch.__file__).parent),
               sysconfig.get_config_var("EXT_SUFFIX") or sys.version, sysconfig.get_paths()["include"],
               *CXX_FLAGS, *LD_FLAGS, *NVCC_FLAGS)
    for part in context:
        digest.update(part.encode() + b"\0")
    for name, text in sorted(sources.items()):
        digest.update(name.encode() + b"\0" + text + b"\0")
    return digest.hexdigest()[:16]


def build_dir(kernels: Kernels, sources: dict[str, bytes]) -> Path:
    """The first-use build's folder, private to these sources, flags, torch and Python."""
    return cache_dir() / f"{kernels.name}-{source_key(sources)}"


def stamp_path(module_file: Path, kernels: Kernels) -> Path:
    """The key file setup.py writes next to a prebuilt module: the ``source_key`` it was built with."""
    return module_file.with_name(kernels.prebuilt.rpartition(".")[2] + ".key")


def prebuilt(kernels: Kernels) -> ModuleType | None:
    """The module ``pip install`` built, unless its key file shows other sources or another torch (the sources
    are checked only where they are: a wheel install has no ``csrc/`` and nothing to rebuild from)."""
    spec = importlib.util.find_spec(kernels.prebuilt)
    if spec is None or spec.origin is None:
        return None
    if all((CSRC / s).is_file() for s in kernels.sources):
        stamp = stamp_path(Path(spec.origin), kernels)
        if not stamp.is_file() or stamp.read_text().strip() != source_key(read_sources(kernels)):
            notice(f"the prebuilt {kernels.name} kernels are out of date (csrc/ or torch changed since they were "
                   "installed; scripts/setup.sh rebuilds them), using a first-use build instead")
            return None
    return importlib.import_module(kernels.prebuilt)


def _owner(lock: Path) -> str:
    text = lock.read_text().split() if lock.is_file() else []
    return f"pid {text[0]} on {text[1]}" if len(text) == 2 else "another process"


@contextmanager
def build_lock(folder: Path, wait_s: float) -> Iterator[None]:
    """Hold ``folder``'s build lock, waiting at most ``wait_s`` for another holder (then BuildLockTimeout).

    An ``flock``, which the kernel releases when its holder dies, so a killed build never blocks the next one.
    The lock file names its holder (pid and host) while held and is emptied on release: a name found on
    taking the lock means that holder died mid-build, and its half-built folder is cleared for a fresh build
    (torch's own lock file there, which holds no pid, would otherwise block every later build forever).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BuildLockTimeout(f"waited {wait_s:g} s for {_owner(lock)} to finish building in {folder} "
                                           "(BLOCKCOPY_BUILD_WAIT_S sets the bound)") from None
                if not waiting:
                    notice(f"waiting up to {wait_s:g} s for {_owner(lock)}, which is building kernels in {folder}")
                    waiting = True
                time.sleep(POLL_S)
        if os.fstat(fd).st_size:
            notice(f"the kernel build of {_owner(lock)} in {folder} did not finish; starting it afresh")
            for entry in folder.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                elif entry.name != LOCK_NAME:
                    entry.unlink()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def compile_module(kernels: Kernels, folder: Path) -> ModuleType:
    """torch.utils.cpp_extension's build (or reuse) of the sources in ``folder / "src"`` into ``folder``; raises
    when that fails."""
    from torch.utils.cpp_extension import load

    return load(
        name=kernels.name,
        sources=[str(folder / "src" / s) for s in kernels.sources],
        extra_cflags=list(CXX_FLAGS),
        extra_ldflags=list(LD_FLAGS),
        extra_cuda_cflags=list(NVCC_FLAGS) if kernels.cuda else None,
        build_directory=str(folder),
        with_cuda=kernels.cuda,
        verbose=False,
    )


def build(cuda: bool) -> ModuleType:
    """The first-use build of the CPU or CUDA kernels (or its cached result), one process per folder at a time.

    It compiles a copy of the sources kept in the folder, so that the build's commands are the same whichever
    checkout asks (torch rebuilds when they change) and the folder holds exactly the sources its key hashed.
    """
    kernels = kernels_for(cuda)
    sources = read_sources(kernels)
    folder = build_dir(kernels, sources)
    with build_lock(folder, build_wait_s()):
        (folder / "src").mkdir(exist_ok=True)
        for name, text in sources.items():
            copy = folder / "src" / name
            if not copy.is_file() or copy.read_bytes() != text:  # rewriting an equal copy would trigger a rebuild
                copy.write_bytes(text)
        if not (folder / f"{kernels.name}.so").is_file():
            notice(f"compiling the {kernels.name} kernels into {folder} (once for these sources and torch)")
        return compile_module(kernels, folder)


def _reason(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


@cache
def _load(cuda: bool) -> ModuleType | None:
    kernels = kernels_for(cuda)
    try:
        return prebuilt(kernels) or build(cuda)
    except Exception as exc:  # no compiler, no nvcc, a build that outlived the wait: fall back, loudly once
        if kernel_mode() == "ext":
            raise RuntimeError(f"building the {kernels.name} kernels failed: {exc}") from exc
        notice(f"{kernels.name} kernels unavailable ({_reason(exc)}), using the PyTorch twins")
        return None


def extension(device: torch.device) -> ModuleType | None:
    """The compiled kernels for ``device``'s type, or None when the twins must be used."""
    if kernel_mode() == "twin" or device.type not in ("cpu", "cuda"):
        return None
    return _load(device.type == "cuda")
