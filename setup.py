"""Builds blockcopy-core with the block-movement kernels of ``csrc/`` compiled ahead of time where it can.

The kernels are compiled against the torch already installed, so install with ``pip install
--no-build-isolation`` (scripts/setup.sh does): pip's isolated build environment has no torch, and making torch a
build requirement would download a multi-GB CUDA build into it. Without torch, or where compiling fails, the
package installs without a kernel (one line says so) and blockcopy_core.engine.kernels compiles it on first use.
Names, sources, flags and the key file come from that module, loaded by path (it needs only torch).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def say(message: str) -> None:
    print(f"blockcopy-core: {message}", file=sys.stderr, flush=True)


def first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def load_kernels_module() -> ModuleType:
    """``blockcopy_core/engine/kernels.py`` on its own, without importing the package (whose dependencies may
    not be installed yet)."""
    spec = importlib.util.spec_from_file_location("blockcopy_build_kernels", ROOT / "blockcopy_core/engine/kernels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    kernels = load_kernels_module()
    SPECS = {k.prebuilt: k for k in (kernels.CPU, kernels.CUDA)}  # module name -> what kernels.py knows of it
except ImportError:  # pip's isolated build environment: no torch to compile against
    torch = kernels = None
    BuildExtension = build_ext  # only so that KernelBuild below can be defined; without torch it is not used


def cuda_unavailable() -> str | None:
    """Why the CUDA kernels cannot be built for this CUDA build of torch, or None: nvcc of torch's major CUDA
    version must be found (torch refuses another major), and without a visible GPU TORCH_CUDA_ARCH_LIST must name
    the architectures (torch would compile for the visible ones)."""
    if CUDA_HOME is None:
        return "nvcc not found (set CUDA_HOME)"
    nvcc = Path(CUDA_HOME) / "bin" / "nvcc"
    try:
        output = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"{nvcc} does not run ({exc})"
    release = re.search(r"release (\d+)\.", output)
    if release is None or release.group(1) != torch.version.cuda.split(".")[0]:
        return f"{nvcc} is not CUDA {torch.version.cuda}, torch's"
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return "no GPU visible and TORCH_CUDA_ARCH_LIST unset"
    return None


def extensions() -> list[Extension]:
    """The CPU kernels, and the CUDA ones where they can be built; each optional (a failure leaves it out)."""
    cxx, ld, nvcc = list(kernels.CXX_FLAGS), list(kernels.LD_FLAGS), list(kernels.NVCC_FLAGS)
    cpu = kernels.CPU
    built = [CppExtension(cpu.prebuilt, [f"csrc/{s}" for s in cpu.sources], extra_compile_args={"cxx": cxx},
                          extra_link_args=ld, optional=True)]
    if torch.version.cuda is None:  # a CPU build of torch: no CUDA kernels to build or miss
        return built
    why_not = cuda_unavailable()
    if why_not is None:
        cuda = kernels.CUDA
        built.append(CUDAExtension(cuda.prebuilt, [f"csrc/{s}" for s in cuda.sources],
                                   extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=ld, optional=True))
    else:
        say(f"CUDA kernels not prebuilt: {why_not}; they compile on first use")
    return built


class KernelBuild(BuildExtension):
    """torch's BuildExtension that leaves out a kernel it cannot compile (one line says why) and writes, next to
    each module it builds, the key file that tells kernels.prebuilt which sources and torch it was built from."""

    def initialize_options(self) -> None:
        super().initialize_options()
        self.built: dict[str, str] = {}  # module name -> key of the sources it was compiled from

    def finalize_options(self) -> None:
        super().finalize_options()
        self.force = True  # never reuse objects from an earlier torch or checkout (build/, a copied tree)

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except Exception as exc:  # torch's toolchain checks before any compiling
            say(f"kernels not prebuilt ({first_line(exc)}); they compile on first use")

    def build_extension(self, ext) -> None:
        key = kernels.source_key(kernels.read_sources(SPECS[ext.name]))
        try:
            super().build_extension(ext)
        except Exception as exc:  # no compiler, a broken toolchain
            say(f"{ext.name} not prebuilt ({first_line(exc)}); it compiles on first use")
        else:
            self.built[ext.name] = key

    def run(self) -> None:
        super().run()  # builds, then copies into the source tree for an editable install
        for name, key in self.built.items():
            kernels.stamp_path(Path(self.get_ext_fullpath(name)), SPECS[name]).write_text(key + "\n")
            say(f"prebuilt {name}")


if kernels is None:
    say("torch is not importable in this build environment (pip's build isolation?): installing without "
        "prebuilt kernels, they compile on first use; pip install --no-build-isolation prebuilds them")
    setup()
else:
    setup(ext_modules=extensions(), cmdclass={"build_ext": KernelBuild})
