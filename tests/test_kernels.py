"""The compiled block-movement kernels equal their PyTorch twins exactly (CPU: float32/float16/bfloat16,
NCHW and channels_last, random grids, halos 0-3, edge and corner blocks); the CUDA sources compile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blockcopy_core.engine import kernels, ops, twins


@pytest.fixture(scope="module")
def ext():
    """The CPU extension, built once per cache directory (the first session pays ~30 s)."""
    return kernels.build(cuda=False)


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


def test_kernels_reject_bad_input(ext):
    dense = torch.zeros(1, 2, 8, 8)
    with pytest.raises(RuntimeError, match="does not divide"):
        ext.split(dense, torch.tensor([0]), 3)
    with pytest.raises(RuntimeError, match="block index 4 outside"):
        ext.split(dense, torch.tensor([4]), 4)
    with pytest.raises(RuntimeError, match="contiguous"):
        ext.split(dense[..., ::2, :], torch.tensor([0]), 4)


NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
def test_cuda_kernels_compile(tmp_path):
    """No GPU needed: the .cu holds only CUDA code, so a bare `nvcc -c` checks it."""
    source = kernels.CSRC / "blockcopy_cuda.cu"
    result = subprocess.run([NVCC, "-c", str(source), "-o", str(tmp_path / "blockcopy_cuda.o")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_missing_toolchain_falls_back_to_twins(monkeypatch, tmp_path, capsys):
    """Without buildable kernels the twins run after a one-line notice; BLOCKCOPY_KERNELS=ext makes it an error."""
    monkeypatch.setattr(kernels, "CSRC", tmp_path)  # no sources: the build fails like a missing compiler
    monkeypatch.setenv("BLOCKCOPY_KERNELS", "auto")
    kernels._load.cache_clear()
    try:
        assert kernels.extension(torch.device("cpu")) is None
        notice = capsys.readouterr().err.strip().splitlines()
        assert len(notice) == 1 and "using the PyTorch twins" in notice[0]
        dense = torch.arange(16.0).reshape(1, 1, 4, 4)
        assert torch.equal(ops.split(dense, torch.tensor([1]), 2), twins.split(dense, torch.tensor([1]), 2))
        kernels._load.cache_clear()
        monkeypatch.setenv("BLOCKCOPY_KERNELS", "ext")
        with pytest.raises(RuntimeError, match="building the blockcopy_cpu kernels failed"):
            kernels.extension(torch.device("cpu"))
    finally:
        kernels._load.cache_clear()
