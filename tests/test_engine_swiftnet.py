"""Invariants 1-4 of DESIGN.md on SwiftNet (RN18; RN50 slow): block sizes 32/64/128, square and non-square
grids, batches of 2 clips, random weights with randomised BN statistics."""

from __future__ import annotations

import pytest
import torch
from test_engine_support import assert_close, random_grid, randomize_bn
from torch import Tensor, nn

from blockcopy_core.engine import BlockSparseEngine
from blockcopy_core.macs import count_macs
from blockcopy_core.models import build_swiftnet

# (frame height, width, block size): grids 4x8, 2x4, 4x4 (square), 2x2 (square)
CONFIGS = [(128, 256, 32), (128, 256, 64), (128, 128, 32), (256, 256, 128)]


@pytest.fixture(scope="module")
def rn18() -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(build_swiftnet("resnet18"), seed=1)


def frames(h: int, w: int, seed: int, n: int = 2) -> Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def dense(net: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return net(x)


def check_invariants(net: nn.Module, h: int, w: int, block: int) -> None:
    n, gh, gw = 2, h // block, w // block
    full = torch.ones(n, gh, gw, dtype=torch.bool)
    # 1: every block executed, through the block path, on changing frames
    engine = BlockSparseEngine(net, block, dense_when_full=False)
    for t in range(2):
        x = frames(h, w, t)
        out = engine(x, full)
        assert_close(out, dense(net, x))
    # 2: the same frame again with a random grid reproduces the previous output
    previous = out
    out = engine(x, random_grid(n, gh, gw, 0.5, 7))
    assert_close(out, previous)
    # 4: on a new frame, copied blocks are bitwise the previous output
    grid = random_grid(n, gh, gw, 0.5, 8)
    previous, out = out, engine(frames(h, w, 5), grid)
    copied = ~grid.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, None].expand_as(out)
    assert torch.equal(out[copied], previous[copied])
    # 3: nothing executed: bitwise previous output, no MACs
    empty, macs = count_macs(engine, frames(h, w, 6), torch.zeros(n, gh, gw, dtype=torch.bool))
    assert torch.equal(empty, out) and macs == 0


@pytest.mark.parametrize(("h", "w", "block"), CONFIGS)
def test_swiftnet_rn18_invariants(rn18, h, w, block):
    check_invariants(rn18, h, w, block)


def test_swiftnet_macs_follow_executed_blocks(rn18):
    """MACs are counted from the shapes that run: a full grid costs exactly the static model, on the dense
    path and on the block path too (halos enlarge conv inputs, not outputs); half the blocks about half."""
    x, block = frames(128, 256, 0), 32
    full = torch.ones(2, 4, 8, dtype=torch.bool)
    _, static = count_macs(dense, rn18, x)
    engine = BlockSparseEngine(rn18, block)
    _, dense_path = count_macs(engine, x, full)
    assert dense_path == static
    _, half = count_macs(engine, x, random_grid(2, 4, 8, 0.5, 3))
    sparse_engine = BlockSparseEngine(rn18, block, dense_when_full=False)
    sparse_engine(x, full)
    _, block_path = count_macs(sparse_engine, x, full)
    assert block_path == static
    assert 0.2 * static < half < 0.8 * static


@pytest.mark.slow
@pytest.mark.parametrize(("backbone", "h", "w", "block"),
                         [("resnet50", 128, 256, 64), ("resnet50", 256, 256, 128), ("resnet34", 128, 256, 32)])
def test_swiftnet_rn50_rn34_invariants(backbone, h, w, block):
    torch.manual_seed(0)
    check_invariants(randomize_bn(build_swiftnet(backbone), seed=2), h, w, block)


def test_swiftnet_channels_last(rn18):
    """channels_last model and frames (the fast CPU layout): the block path still equals the dense model."""
    net = rn18.to(memory_format=torch.channels_last)
    try:
        x = frames(128, 256, 11).contiguous(memory_format=torch.channels_last)
        engine = BlockSparseEngine(net, 64, dense_when_full=False)
        full = torch.ones(2, 2, 4, dtype=torch.bool)
        engine(x, full)
        assert_close(engine(x, full), dense(net, x))
        assert_close(engine(x, random_grid(2, 2, 4, 0.5, 4)), dense(net, x))
    finally:
        rn18.to(memory_format=torch.contiguous_format)
