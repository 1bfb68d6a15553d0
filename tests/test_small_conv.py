"""Convolutions on tiny blocks as one GEMM (blockcopy_core/engine/small_conv.py): ``conv_as_gemm`` equals
``torch.conv2d`` with padding 0, ``gemm_pays`` admits only channels_last fp32 CPU convs with outputs of at most
GEMM_MAX_OUTPUT px a side, and the block-sparse engine takes this path on the deep layers of a channels_last
model with tiny blocks while keeping the invariants."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_support import assert_close, random_grid
from torch import Tensor, nn

from blockcopy_core.engine import BlockSparseEngine, sites
from blockcopy_core.engine.small_conv import GEMM_MAX_OUTPUT, conv_as_gemm, gemm_pays

CL = torch.channels_last


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


# --- conv_as_gemm against torch.conv2d ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 8),
    cin=st.integers(3, 40),
    cout=st.integers(3, 40),
    kernel=st.sampled_from([(1, 1), (3, 3), (1, 3), (3, 1), (2, 2)]),
    stride=st.sampled_from([1, 2]),
    out_hw=st.tuples(st.integers(1, GEMM_MAX_OUTPUT), st.integers(1, GEMM_MAX_OUTPUT)),
    extra=st.tuples(st.integers(0, 1), st.integers(0, 1)),  # input rows / cols the stride skips at the end
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_conv_as_gemm_equals_conv2d(n, cin, cout, kernel, stride, out_hw, extra, bias, seed):
    kh, kw = kernel
    h = (out_hw[0] - 1) * stride + kh + extra[0] % stride
    w = (out_hw[1] - 1) * stride + kw + extra[1] % stride
    x = randn(n, cin, h, w, seed=seed).contiguous(memory_format=CL)
    weight = randn(cout, cin, kh, kw, seed=seed + 1).contiguous(memory_format=CL)
    b = randn(cout, seed=seed + 2) if bias else None
    assert gemm_pays(x, weight, (stride, stride), (1, 1), 1)  # the cases the engine routes here

    out = conv_as_gemm(x, weight, b, stride)
    reference = torch.conv2d(x, weight, b, stride)
    assert out.shape == reference.shape == (n, cout, *out_hw)
    assert out.is_contiguous(memory_format=CL)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)


def test_conv_as_gemm_does_not_touch_its_inputs():
    x = randn(4, 16, 4, 4, seed=0).contiguous(memory_format=CL)
    weight = randn(8, 16, 3, 3, seed=1).contiguous(memory_format=CL)
    bias = randn(8, seed=2)
    copies = [t.clone() for t in (x, weight, bias)]
    conv_as_gemm(x, weight, bias, 1)
    for t, c in zip((x, weight, bias), copies):
        assert torch.equal(t, c)


# --- gemm_pays ---------------------------------------------------------------------------------------------


def case(h: int = 4, w: int = 4, k: tuple[int, int] = (3, 3), cin: int = 8, cout: int = 8, groups: int = 1,
         dtype: torch.dtype = torch.float32, x_format=CL, w_format=CL) -> tuple[Tensor, Tensor]:
    x = randn(2, cin, h, w, seed=0, dtype=dtype).contiguous(memory_format=x_format)
    weight = randn(cout, cin // groups, *k, seed=1, dtype=dtype).contiguous(memory_format=w_format)
    return x, weight


PAYS = {
    "3x3 -> 2x2": (case(4, 4), (1, 1), (1, 1), 1),
    "3x3 -> 1x1": (case(3, 3), (1, 1), (1, 1), 1),
    "3x3 stride 2 -> 2x2": (case(5, 5), (2, 2), (1, 1), 1),
    "3x3 stride 2 -> 1x1": (case(4, 4), (2, 2), (1, 1), 1),
    "1x1 -> 2x2": (case(2, 2, (1, 1)), (1, 1), (1, 1), 1),
    "1x1 -> 1x1": (case(1, 1, (1, 1)), (1, 1), (1, 1), 1),
    "1x1 stride 2 -> 2x2": (case(4, 4, (1, 1)), (2, 2), (1, 1), 1),
    "3x3 -> 1x2": (case(3, 4), (1, 1), (1, 1), 1),
    "1x3 -> 2x2": (case(2, 4, (1, 3)), (1, 1), (1, 1), 1),
}
DOES_NOT_PAY = {
    "3x3 -> 3x3": (case(5, 5), (1, 1), (1, 1), 1),
    "3x3 -> 6x6": (case(8, 8), (1, 1), (1, 1), 1),
    "3x3 -> 2x3": (case(4, 5), (1, 1), (1, 1), 1),
    "1x1 -> 4x4": (case(4, 4, (1, 1)), (1, 1), (1, 1), 1),
    "3x3 stride 2 -> 3x3": (case(7, 7), (2, 2), (1, 1), 1),
    "input smaller than the kernel": (case(2, 2), (1, 1), (1, 1), 1),
    "NCHW input": (case(4, 4, x_format=torch.contiguous_format), (1, 1), (1, 1), 1),
    "NCHW weight": (case(4, 4, w_format=torch.contiguous_format), (1, 1), (1, 1), 1),
    "float64": (case(4, 4, dtype=torch.float64), (1, 1), (1, 1), 1),
    "bfloat16": (case(4, 4, dtype=torch.bfloat16), (1, 1), (1, 1), 1),
    "float16": (case(4, 4, dtype=torch.float16), (1, 1), (1, 1), 1),
    "groups 2": (case(4, 4, groups=2), (1, 1), (1, 1), 2),
    "dilation 2": (case(6, 6), (1, 1), (2, 2), 1),
    "stride (1, 2)": (case(4, 5), (1, 2), (1, 1), 1),
    "stride (2, 1)": (case(5, 4), (2, 1), (1, 1), 1),
}


@pytest.mark.parametrize("name", PAYS)
def test_gemm_pays_for_tiny_channels_last_fp32_convs(name):
    (x, weight), stride, dilation, groups = PAYS[name]
    assert gemm_pays(x, weight, stride, dilation, groups)


@pytest.mark.parametrize("name", DOES_NOT_PAY)
def test_gemm_does_not_pay(name):
    (x, weight), stride, dilation, groups = DOES_NOT_PAY[name]
    assert not gemm_pays(x, weight, stride, dilation, groups)


# --- the engine end to end ---------------------------------------------------------------------------------


class TinyNet(nn.Module):
    """conv3x3 -> relu -> conv3x3 s2 -> relu -> conv3x3 s2 -> conv1x1: output at stride 4, so with 4 px blocks
    the last two convs see 1 px blocks (3 x 3 with the halo), with 8 px blocks 2 px ones."""

    def __init__(self, width: int = 8, classes: int = 5):
        super().__init__()
        self.a = nn.Conv2d(3, width, 3, padding=1)
        self.b = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
        self.c = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.head = nn.Conv2d(2 * width, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.a(x))
        x = torch.relu(self.b(x))
        return self.head(self.c(x))


def dense(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x)


@pytest.fixture
def gemm_calls(monkeypatch) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, weight shape) of every conv_as_gemm call the engine makes."""
    calls = []

    def counting(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
        calls.append((tuple(x.shape), tuple(weight.shape)))
        out = conv_as_gemm(x, weight, bias, stride)
        assert out.is_contiguous(memory_format=CL)
        return out

    monkeypatch.setattr(sites, "conv_as_gemm", counting)
    return calls


def run_engine(model: nn.Module, block: int, fmt: torch.memory_format, calls: list) -> None:
    n, h, w = 2, 16, 32
    gh, gw = h // block, w // block
    full = torch.ones(n, gh, gw, dtype=torch.bool)
    frame = [randn(n, 3, h, w, seed=s).contiguous(memory_format=fmt) for s in range(2)]
    engine = BlockSparseEngine(model, block, dense_when_full=False)
    engine(frame[0], full)  # the first frame runs densely
    assert not calls
    # a new frame, every block executed through the block path, equals the dense model
    reference = dense(model, frame[1])
    assert_close(engine(frame[1], full), reference)
    # the same frame again with random grids gives the previous (= dense) output, block borders included
    for seed in range(3):
        assert_close(engine(frame[1], random_grid(n, gh, gw, 0.5, seed)), reference)
    # a new frame: copied blocks are bitwise the previous output
    previous = engine(frame[0], full)
    grid = random_grid(n, gh, gw, 0.5, 10)
    out = engine(frame[1], grid)
    out_block = out.shape[-1] // gw  # the output is at stride 4
    copied = ~grid.repeat_interleave(out_block, 1).repeat_interleave(out_block, 2)[:, None].expand_as(out)
    assert torch.equal(out[copied], previous[copied])


@pytest.mark.parametrize("block", [4, 8])
def test_engine_takes_the_gemm_path_on_channels_last(gemm_calls, block):
    torch.manual_seed(0)
    model = TinyNet().eval().to(memory_format=CL)
    run_engine(model, block, CL, gemm_calls)
    assert gemm_calls
    # only the deep layers (outputs of at most GEMM_MAX_OUTPUT px a block) go there, never the stride-1 stem
    assert all(weight[1] != 3 for _, weight in gemm_calls)
    if block == 4:  # conv b (2 px outputs), conv c and the head (1 px) all do
        assert {weight[1] for _, weight in gemm_calls} == {8, 16}
        assert {weight[-1] for _, weight in gemm_calls} == {1, 3}


def test_engine_skips_the_gemm_path_on_nchw(gemm_calls):
    torch.manual_seed(0)
    model = TinyNet().eval()
    run_engine(model, 8, torch.contiguous_format, gemm_calls)
    assert not gemm_calls


def test_engine_on_nchw_with_1px_blocks(gemm_calls):
    """An NCHW map of 1 x 1 px blocks is channels_last too (the layouts coincide): only such inputs (the head's
    1x1 conv on 1 px blocks) may take the GEMM path in an NCHW model; the result is the same either way."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    run_engine(model, 4, torch.contiguous_format, gemm_calls)
    assert all(x[-2:] == (1, 1) and weight[-2:] == (1, 1) for x, weight in gemm_calls)
