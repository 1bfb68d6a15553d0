"""The compiled block-movement kernels equal their PyTorch twins exactly (CPU; the CUDA kernels run on the CPU
thread by thread, ``cuda_emulation``; and CUDA where a GPU is visible: float32/float16/bfloat16, NCHW and
channels_last, random grids, halos 0-3, edge and corner blocks), the CPU's resize of blocks into a map equals its
twin to float rounding, CUDA checks block indices on the device (and emulated), and the CUDA sources compile
(the binding against torch's headers, slow); the module ``pip install`` prebuilt is the one used; the first-use
build is keyed by its sources and survives a killed or a hung build."""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import cuda_emulation
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.cpp_extension import include_paths

from blockcopy_core.engine import kernels, ops, twins

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


class OnDevice:
    """A kernel module run on ``device`` with CPU tensors in and out (in-place results copied back)."""

    def __init__(self, module, device: torch.device):
        self.module, self.device = module, device

    def _to(self, t: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        """``t`` on the device, contiguous in the memory format of ``like`` (default: its own), as the engine's
        ops hand blocks to the CUDA kernels (a crop loses its channels_last look, so blocks follow their map)."""
        return t.to(self.device).contiguous(memory_format=twins.memory_format_of(t if like is None else like))

    def split(self, dense, idx, block):
        return self.module.split(self._to(dense), self._to(idx), block).cpu()

    def combine(self, blocks, idx, dense, border=0):
        on = self._to(dense)
        self.module.combine(self._to(blocks, like=dense), self._to(idx), on, border)
        dense.copy_(on.cpu())

    def transfer(self, src, dst, idx, block):
        on = self._to(dst)
        self.module.transfer(self._to(src), on, self._to(idx), block)
        dst.copy_(on.cpu())

    def block_pad(self, blocks, block_pos, stale, idx, halo, replicate, value):
        return self.module.block_pad(self._to(blocks, like=stale), self._to(block_pos), self._to(stale),
                                     self._to(idx), halo, replicate, value).cpu()


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))
NEEDS_GXX = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
EMULATED_CUDA = pytest.param("cuda-emulated", marks=NEEDS_GXX)


@pytest.fixture(scope="module", params=["cpu", EMULATED_CUDA, CUDA])
def ext(request):
    """The kernels in the order the engine takes them: the prebuilt module where installed and current, else
    the first-use build (the first session without a prebuilt module pays ~30 s for the CPU's); and the CUDA
    kernels run on the CPU, every thread in turn (``cuda_emulation``: their arithmetic without a GPU)."""
    if request.param == "cpu":
        return kernels.prebuilt(kernels.CPU) or kernels.build(cuda=False)
    if request.param == "cuda-emulated":
        return OnDevice(cuda_emulation.build(kernels.cache_dir()), CPU)
    return OnDevice(kernels.prebuilt(kernels.CUDA) or kernels.build(cuda=True), torch.device("cuda"))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty first-use cache, ``auto`` mode, and no kernels remembered from earlier tests (nor left for later)."""
    monkeypatch.setenv("BLOCKCOPY_EXTENSIONS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BLOCKCOPY_KERNELS", "auto")
    kernels._load.cache_clear()
    yield
    kernels._load.cache_clear()


@st.composite
def maps(draw):
    """A random map with a random subset of its blocks (possibly none, possibly all)."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    gh, gw, block = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    channels_last = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(n, c, gh * block, gw * block, generator=g).to(dtype)
    if channels_last:
        dense = dense.contiguous(memory_format=torch.channels_last)
    chosen = torch.rand(n * gh * gw, generator=g) < draw(st.floats(0.0, 1.0))
    return dense, torch.nonzero(chosen).reshape(-1), block


@settings(max_examples=60, deadline=None)
@given(maps())
def test_split_and_combine_match_twins(ext, case):
    dense, idx, block = case
    blocks = ext.split(dense, idx, block)
    assert torch.equal(blocks, twins.split(dense, idx, block))
    assert blocks.is_contiguous(memory_format=twins.memory_format_of(dense)) or blocks.is_contiguous()
    new_blocks = torch.randn(blocks.shape).to(dense.dtype).contiguous(memory_format=twins.memory_format_of(dense))
    got, want = dense.clone(), dense.clone()
    ext.combine(new_blocks, idx, got)
    assert torch.equal(got, twins.combine(new_blocks, idx, want))


@settings(max_examples=40, deadline=None)
@given(maps(), st.integers(0, 2))
def test_combine_takes_cropped_blocks(ext, case, margin):
    """Blocks that are a crop of larger ones (the engine's upsampled blocks) combine without a copy."""
    dense, idx, block = case
    fmt = twins.memory_format_of(dense)
    size = block + 2 * margin
    larger = torch.randn(idx.numel(), dense.shape[1], size, size).to(dense.dtype).contiguous(memory_format=fmt)
    crop = larger[..., margin : margin + block, margin : margin + block]
    got, want = dense.clone(), dense.clone()
    ext.combine(crop, idx, got)
    assert torch.equal(got, twins.combine(crop, idx, want))


@settings(max_examples=60, deadline=None)
@given(maps())
def test_transfer_matches_twin(ext, case):
    src, idx, block = case
    dst = torch.zeros_like(src)
    ext.transfer(src, dst, idx, block)
    assert torch.equal(dst, twins.transfer(src, torch.zeros_like(src), idx, block))


@settings(max_examples=80, deadline=None)
@given(maps(), st.tuples(*[st.integers(0, 3)] * 4), st.booleans(), st.sampled_from([0.0, float("-inf"), 1.5]))
def test_block_pad_matches_twin(ext, case, halo, replicate, value):
    """Halo from this frame's blocks where executed, from the stale map elsewhere, border as the dense op."""
    stale, idx, block = case
    block_pos = torch.full((stale.shape[0] * (stale.shape[2] // block) * (stale.shape[3] // block),), -1)
    block_pos[idx] = torch.arange(idx.numel())
    fmt = twins.memory_format_of(stale)
    blocks = torch.randn(idx.numel(), stale.shape[1], block, block).to(stale.dtype).contiguous(memory_format=fmt)
    got = ext.block_pad(blocks, block_pos, stale, idx, list(halo), replicate, value)
    assert torch.equal(got, twins.block_pad(blocks, block_pos, stale, idx, halo, replicate, value))


@settings(max_examples=40, deadline=None)
@given(maps())
def test_combine_skips_negative_indices(ext, case):
    dense, idx, block = case
    blocks = twins.split(dense, idx, block) + 1
    masked = torch.where(torch.arange(idx.numel()) % 2 == 0, idx, -1)
    got, want = dense.clone(), dense.clone()
    ext.combine(blocks, masked, got)
    assert torch.equal(got, twins.combine(blocks, masked, want))
    assert torch.equal(got, twins.combine(blocks[::2], idx[::2], dense.clone()))


@settings(max_examples=60, deadline=None)
@given(maps(), st.integers(0, 4), st.integers(0, 2))
def test_combine_border_matches_twin(ext, case, border, margin):
    """``border`` > 0 writes only each block's frame of that width (cropped blocks, skipped indices too)."""
    dense, idx, block = case
    fmt = twins.memory_format_of(dense)
    size = block + 2 * margin
    larger = torch.randn(idx.numel(), dense.shape[1], size, size).to(dense.dtype).contiguous(memory_format=fmt)
    blocks = larger[..., margin : margin + block, margin : margin + block]
    masked = torch.where(torch.arange(idx.numel()) % 3 == 1, -1, idx)
    got, want = dense.clone(), dense.clone()
    ext.combine(blocks, masked, got, border)
    assert torch.equal(got, twins.combine(blocks, masked, want, border))


@settings(max_examples=60, deadline=None)
@given(maps(), st.integers(1, 4))
def test_upsample_into_matches_twin_to_float_rounding(case, factor):
    """The CPU kernel that resizes padded blocks straight into a channels_last map (the model's final upsampling)
    gives PyTorch's bilinear resize of the blocks, written at their indices, up to the order of its float sums;
    blocks not named, and those named -1, keep their values."""
    dense, idx, block = case
    ext = kernels.prebuilt(kernels.CPU) or kernels.build(cuda=False)
    g = torch.Generator().manual_seed(int(idx.sum()) + factor)
    big = torch.randn(dense.shape[0], dense.shape[1], dense.shape[2] * factor, dense.shape[3] * factor,
                      generator=g).to(dense.dtype).contiguous(memory_format=torch.channels_last)
    idx = torch.where(torch.rand(idx.shape, generator=g) < 0.2, -1, idx)  # a padded batch's rows
    padded = torch.randn(idx.numel(), dense.shape[1], block + 2, block + 2, generator=g).to(dense.dtype)
    padded = padded.contiguous(memory_format=torch.channels_last)
    got, want = big.clone(), big.clone()
    ext.upsample_into(padded, factor, idx, got)
    twins.upsample_into(padded, factor, idx, want)
    scale = float(padded.abs().max()) if padded.numel() else 0.0
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=4 * torch.finfo(dense.dtype).eps * scale)
    untouched = want == big  # outside the written blocks (and where a write left the value as it was)
    assert torch.equal(got[untouched], big[untouched])


def test_upsample_into_refuses_nchw_maps():
    ext = kernels.prebuilt(kernels.CPU) or kernels.build(cuda=False)
    with pytest.raises(RuntimeError, match="channels_last"):
        ext.upsample_into(torch.zeros(1, 2, 4, 4), 2, torch.tensor([0]), torch.zeros(1, 2, 4, 4))


def test_combine_border_twin_writes_the_frame_only():
    """Hand-checked case for the oracle: a 4x4 block, border 1 leaves its inner 2x2 alone; border 2 is all."""
    dense = torch.zeros(1, 1, 4, 8)
    twins.combine(torch.ones(1, 1, 4, 4), torch.tensor([1]), dense, border=1)
    frame = torch.ones(4, 4)
    frame[1:3, 1:3] = 0
    assert torch.equal(dense[0, 0, :, 4:], frame) and not dense[0, 0, :, :4].any()
    twins.combine(torch.ones(1, 1, 4, 4), torch.tensor([0]), dense, border=2)
    assert torch.equal(dense[0, 0, :, :4], torch.ones(4, 4))


def test_block_pad_twin_reads_neighbours_and_border():
    """Hand-checked cases for the oracle itself: 2x2 blocks of a 4x4 map, halo 1."""
    stale = torch.arange(16.0).reshape(1, 1, 4, 4)
    padded = twins.pad_from_map(stale, torch.tensor([3]), 2, (1, 1, 1, 1), False, -1.0)[0, 0]
    assert padded.tolist() == [[5, 6, 7, -1], [9, 10, 11, -1], [13, 14, 15, -1], [-1, -1, -1, -1]]
    clamped = twins.pad_from_map(stale, torch.tensor([0]), 2, (1, 0, 0, 1), True, 0.0)[0, 0]
    assert clamped.tolist() == [[0, 1, 2], [0, 1, 2], [4, 5, 6]]
    # block 1 (top right) executed this frame with values 100..103: block 0's right halo reads them
    current = torch.arange(100.0, 104.0).reshape(1, 1, 2, 2)
    block_pos = torch.tensor([-1, 0, -1, -1])
    mixed = twins.block_pad(current, block_pos, stale, torch.tensor([0]), (0, 1, 0, 1), False, 0.0)[0, 0]
    assert mixed.tolist() == [[0, 1, 100], [4, 5, 102], [8, 9, 10]]


def test_kernels_reject_bad_input():
    ext = kernels.prebuilt(kernels.CPU) or kernels.build(cuda=False)
    dense = torch.zeros(1, 2, 8, 8)
    with pytest.raises(RuntimeError, match="does not divide"):
        ext.split(dense, torch.tensor([0]), 3)
    with pytest.raises(RuntimeError, match="block index 4 outside"):
        ext.split(dense, torch.tensor([4]), 4)
    with pytest.raises(RuntimeError, match="contiguous"):
        ext.split(dense[..., ::2, :], torch.tensor([0]), 4)


NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)


CUDA_INCLUDE = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
def test_cuda_kernels_compile(tmp_path):
    """No GPU needed: the .cu holds only CUDA code, so a bare `nvcc -c` checks it."""
    source = kernels.CSRC / "blockcopy_cuda.cu"
    result = subprocess.run([NVCC, "-c", str(source), "-o", str(tmp_path / "blockcopy_cuda.o")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.skipif(NVCC is None or shutil.which("g++") is None or not (CUDA_INCLUDE / "cuda_runtime.h").is_file(),
                    reason="no CUDA toolkit (nvcc, headers) or g++")
def test_cuda_binding_compiles_and_links_to_the_kernels(tmp_path):
    """The binding compiles against torch's headers (a CPU build of torch lacks one generated CUDA header, which
    a stub provides) and needs exactly the launchers the .cu defines (~30 s)."""
    stub = tmp_path / "stub" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    includes = [tmp_path / "stub", *include_paths(), sysconfig.get_paths()["include"], CUDA_INCLUDE]
    binding, launchers = tmp_path / "bind.o", tmp_path / "cuda.o"
    compiled = subprocess.run(
        ["g++", "-c", "-std=c++17", "-fPIC", str(kernels.CSRC / "blockcopy_cuda_bind.cpp"), "-o", str(binding),
         "-DTORCH_EXTENSION_NAME=blockcopy_cuda", "-DTORCH_API_INCLUDE_EXTENSION_H",
         f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}", *(f"-I{p}" for p in includes)],
        capture_output=True, text=True, timeout=600)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    subprocess.run([NVCC, "-c", str(kernels.CSRC / "blockcopy_cuda.cu"), "-o", str(launchers)], check=True,
                   timeout=300)

    def symbols(obj: Path, kind: str) -> set[str]:
        lines = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout.splitlines()
        return {line.split()[-1] for line in lines if f" {kind} " in line and "blockcopy_cuda_" in line}

    assert symbols(binding, "U") and symbols(binding, "U") <= symbols(launchers, "T")


@NEEDS_GXX
def test_emulated_cuda_kernels_flag_bad_indices_and_move_nothing_for_them():
    """The CUDA kernels' index checks, run on the CPU: a block index outside the map sets bit 1, a block_pos entry
    outside the packed blocks bit 2, and neither moves a value."""
    ext = cuda_emulation.build(kernels.cache_dir())
    for fmt in (torch.contiguous_format, torch.channels_last):
        dense = torch.arange(32.0).reshape(1, 2, 4, 4).contiguous(memory_format=fmt)
        blocks = ext.split(dense, torch.tensor([0, 9]), 2)  # 4 blocks: 9 is outside
        assert ext.take_index_error() == 1 and ext.take_index_error() == 0
        assert torch.equal(blocks[0], twins.split(dense, torch.tensor([0]), 2)[0])
        before = dense.clone()
        ext.combine(blocks, torch.tensor([1, 7]), dense)
        assert ext.take_index_error() == 1 and torch.equal(dense[0, :, :2, 2:], blocks[0])
        assert torch.equal(dense[..., 2:, :], before[..., 2:, :])
        ext.block_pad(blocks, torch.tensor([0, 5, -1, -1]), dense, torch.tensor([0]), [1, 1, 1, 1], False, 0.0)
        assert ext.take_index_error() == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_checks_block_indices_on_the_device():
    """A bad index moves nothing and is reported once per frame (no host sync per movement)."""
    ext = kernels.prebuilt(kernels.CUDA) or kernels.build(cuda=True)
    dense = torch.arange(32.0, device="cuda").reshape(1, 2, 4, 4)
    blocks = ext.split(dense, torch.tensor([0, 9], device="cuda"), 2)  # 4 blocks: 9 is outside
    assert ext.take_index_error(-1) == 1 and ext.take_index_error(-1) == 0
    assert torch.equal(blocks[0].cpu(), twins.split(dense.cpu(), torch.tensor([0]), 2)[0])
    before = dense.clone()
    ext.combine(blocks, torch.tensor([1, 7], device="cuda"), dense)
    block_pos = torch.tensor([0, 5, -1, -1], device="cuda")  # entry 5: only 2 packed blocks
    ext.block_pad(blocks, block_pos, dense, torch.tensor([0], device="cuda"), [1, 1, 1, 1], False, 0.0)
    with pytest.raises(RuntimeError, match="outside its map"):
        ops.check_device_errors(dense.device)
    assert torch.equal(dense[0, :, :2, 2:], blocks[0]) and torch.equal(dense[..., 2:, :], before[..., 2:, :])


def test_installed_prebuilt_module_is_used(fresh, monkeypatch):
    """What `pip install --no-build-isolation` built is what runs (the tests above then check that module)."""
    spec = importlib.util.find_spec(kernels.CPU.prebuilt)
    if spec is None:
        pytest.skip("installed without prebuilt kernels (pip install --no-build-isolation -e . builds them)")
    stamp = kernels.stamp_path(Path(spec.origin), kernels.CPU)
    if not stamp.is_file() or stamp.read_text().strip() != kernels.source_key(kernels.read_sources(kernels.CPU)):
        pytest.skip("the prebuilt kernels are older than csrc/ or torch (scripts/setup.sh rebuilds them)")
    monkeypatch.setattr(kernels, "build", lambda cuda: pytest.fail("built although a prebuilt module is installed"))
    assert kernels.extension(CPU) is importlib.import_module(kernels.CPU.prebuilt)


def fake_prebuilt(root: Path, package: str, key: str) -> kernels.Kernels:
    """A stand-in prebuilt module in a new ``package`` under ``root`` (on sys.path) with the key file ``key``."""
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    (root / package / "_kernels_fake.py").write_text("ORIGIN = 'prebuilt'\n")
    spec = kernels.CPU._replace(prebuilt=f"{package}._kernels_fake")
    kernels.stamp_path(root / package / "_kernels_fake.py", spec).write_text(key + "\n")
    return spec


@pytest.mark.parametrize("current", [True, False])
def test_prebuilt_module_is_used_only_when_built_from_these_sources(fresh, monkeypatch, tmp_path, capsys, current):
    key = kernels.source_key(kernels.read_sources(kernels.CPU)) if current else "0123456789abcdef"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(kernels, "CPU", fake_prebuilt(tmp_path, f"fake_prebuilt_{current}".lower(), key))
    monkeypatch.setattr(kernels, "compile_module", lambda spec, folder: "first-use build")
    got = kernels.extension(CPU)
    if current:
        assert got.ORIGIN == "prebuilt" and capsys.readouterr().err == ""
    else:
        assert got == "first-use build"
        assert "prebuilt blockcopy_cpu kernels are out of date" in capsys.readouterr().err


def test_build_folder_is_keyed_by_sources_and_torch(fresh, monkeypatch, tmp_path):
    """Checkouts with other sources and environments with another torch never build into the same folder."""
    sources = kernels.read_sources(kernels.CPU)
    folder = kernels.build_dir(kernels.CPU, sources)
    assert folder.parent == tmp_path / "cache" and folder.name.startswith("blockcopy_cpu-")
    assert kernels.build_dir(kernels.CPU, dict(sources)) == folder
    edited = kernels.build_dir(kernels.CPU, {name: text + b"// edited\n" for name, text in sources.items()})
    assert edited != folder
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert kernels.build_dir(kernels.CPU, sources) not in (folder, edited)


def test_build_compiles_its_own_copy_of_the_sources(fresh, monkeypatch, tmp_path):
    """Two checkouts of the same sources give the build the same commands (torch would rebuild otherwise)."""
    monkeypatch.setattr(kernels, "compile_module", lambda spec, folder: folder)
    folders = []
    for checkout in ("a", "b"):
        (tmp_path / checkout).mkdir()
        for name in kernels.CPU.sources:
            shutil.copy(ROOT / "csrc" / name, tmp_path / checkout / name)
        monkeypatch.setattr(kernels, "CSRC", tmp_path / checkout)
        folders.append(kernels.build(cuda=False))
    copy = folders[0] / "src" / kernels.CPU.sources[0]
    assert folders[0] == folders[1] and copy.read_bytes() == (ROOT / "csrc" / kernels.CPU.sources[0]).read_bytes()


HOLDER = """
import sys, time
from pathlib import Path
from blockcopy_core.engine import kernels
folder = Path(sys.argv[1])
with kernels.build_lock(folder, 0):
    (folder / "lock").touch()  # torch's own lock file, which a build killed midway leaves behind
    (folder / "blockcopy_cpu.o").write_text("half an object file")
    print("holding", flush=True)
    time.sleep(60)
"""


def test_lock_of_a_killed_build_is_taken_over(fresh, monkeypatch, capsys):
    """A build killed while it holds the lock neither blocks the next one nor leaves it its half-built files."""
    folder = kernels.build_dir(kernels.CPU, kernels.read_sources(kernels.CPU))
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    monkeypatch.setenv("BLOCKCOPY_BUILD_WAIT_S", "30")  # a bound only in case the takeover is broken
    seen = []
    monkeypatch.setattr(kernels, "compile_module", lambda spec, where: seen.append(sorted(os.listdir(where))) or "ok")
    assert kernels.build(cuda=False) == "ok"
    assert seen == [[kernels.LOCK_NAME, "src"]]  # torch's lock and the half-built object were cleared first
    err = capsys.readouterr().err
    assert f"the kernel build of pid {holder.pid} on" in err and "did not finish" in err
    assert (folder / kernels.LOCK_NAME).read_text() == ""  # released, so the next build starts clean


def test_build_held_past_the_bound_runs_the_twins(fresh, monkeypatch, capsys):
    """Another process that keeps building past BLOCKCOPY_BUILD_WAIT_S: the twins run, and a line says why."""
    monkeypatch.setattr(kernels, "CPU", kernels.CPU._replace(prebuilt="blockcopy_core._no_prebuilt_kernels"))
    monkeypatch.setattr(kernels, "compile_module", lambda spec, folder: pytest.fail("built without the lock"))
    monkeypatch.setenv("BLOCKCOPY_BUILD_WAIT_S", "0.3")
    folder = kernels.build_dir(kernels.CPU, kernels.read_sources(kernels.CPU))
    folder.mkdir(parents=True)
    fd = os.open(folder / kernels.LOCK_NAME, os.O_RDWR | os.O_CREAT)  # a lock of its own: foreign to kernels.py
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242 builder-host\n")
        assert kernels.extension(CPU) is None
        lines = capsys.readouterr().err.strip().splitlines()
        assert "waiting up to 0.3 s for pid 4242 on builder-host" in lines[0]
        assert len(lines) == 2 and "using the PyTorch twins" in lines[1]
        assert "BuildLockTimeout: waited 0.3 s for pid 4242 on builder-host" in lines[1]
        assert_twins_run_and_ext_refuses(monkeypatch, "waited 0.3 s for pid 4242")
    finally:
        os.close(fd)


def test_missing_toolchain_falls_back_to_twins(fresh, monkeypatch, tmp_path, capsys):
    """Without buildable kernels the twins run after a one-line notice; BLOCKCOPY_KERNELS=ext makes it an error."""
    monkeypatch.setattr(kernels, "CPU", kernels.CPU._replace(prebuilt="blockcopy_core._no_prebuilt_kernels"))
    monkeypatch.setattr(kernels, "CSRC", tmp_path)  # no sources: the build fails like a missing compiler
    assert kernels.extension(CPU) is None
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "using the PyTorch twins" in notice[0]
    assert_twins_run_and_ext_refuses(monkeypatch, "building the blockcopy_cpu kernels failed")


def assert_twins_run_and_ext_refuses(monkeypatch, reason: str) -> None:
    """After a fallback the ops give the twins' results; with BLOCKCOPY_KERNELS=ext the same case is an error."""
    dense = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(ops.split(dense, torch.tensor([1]), 2), twins.split(dense, torch.tensor([1]), 2))
    kernels._load.cache_clear()
    monkeypatch.setenv("BLOCKCOPY_KERNELS", "ext")
    with pytest.raises(RuntimeError, match=reason):
        kernels.extension(CPU)
