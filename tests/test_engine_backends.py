"""The engine's invariants on each implementation of the block movements: the compiled CPU kernels, the PyTorch
twins, and the CUDA kernels (skipped without a GPU), in float32, float16 and bfloat16, with the block batch
padded or not."""

from __future__ import annotations

import pytest
import torch
from test_engine_support import SmallNet, assert_close, random_grid, randomize_bn
from torch import nn

from blockcopy_core.engine import BlockSparseEngine, kernels

BACKENDS = ["cpu-kernels", "twins", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.fixture(params=BACKENDS)
def device(request, monkeypatch) -> torch.device:
    """The device to run on, with BLOCKCOPY_KERNELS set so that exactly the named implementation runs."""
    monkeypatch.setenv("BLOCKCOPY_KERNELS", "twin" if request.param == "twins" else "ext")
    kernels._load.cache_clear()
    yield torch.device("cuda" if request.param == "cuda" else "cpu")
    kernels._load.cache_clear()


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(SmallNet())


@pytest.mark.parametrize("batch_step", [1, 4])  # 4: the block batch padded, as on a GPU by default
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_invariants_on_each_backend(net, device, dtype, batch_step):
    model = SmallNet().eval()
    model.load_state_dict(net.state_dict())
    model = model.to(device, dtype)
    n, gh, gw, block = 2, 2, 3, 16
    g = torch.Generator().manual_seed(0)
    clip = [torch.randn(n, 3, gh * block, gw * block, generator=g).to(device, dtype) for _ in range(3)]
    full = torch.ones(n, gh, gw, dtype=torch.bool, device=device)
    engine = BlockSparseEngine(model, block, dense_when_full=False, batch_step=batch_step)
    engine(clip[0], full)
    with torch.no_grad():
        reference = model(clip[1])
    out = engine(clip[1], full)
    if dtype == torch.float32:
        assert_close(out, reference)  # every block executed equals dense
        assert_close(engine(clip[1], random_grid(n, gh, gw, 0.5, 1).to(device)), reference)  # repeated frame
    else:
        assert (out.float() - reference.float()).abs().max() <= 0.05 * reference.float().abs().max()
    previous = engine(clip[1], full)
    grid = random_grid(n, gh, gw, 0.5, 2).to(device)
    out = engine(clip[2], grid)
    copied = ~grid.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, None].expand_as(out)
    assert torch.equal(out[copied], previous[copied])  # copies are bitwise
    empty = engine(clip[0], torch.zeros_like(grid))
    assert torch.equal(empty, out) and empty.data_ptr() != out.data_ptr()
