"""Property tests over a family of small random models built from the supported ops (strided and dilated
convs, grouped convs, max / avg pooling, bilinear and nearest resizes, skip additions, concatenations, global
and pyramid pooling): on random grids and odd block sizes, every executed block through the block path equals
the dense model, copied regions are bitwise the previous output, and a repeated frame with any grid equals
the dense output, block borders included."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_support import assert_close, randomize_bn
from torch import Tensor, nn

from blockcopy_core.engine import BlockSparseEngine

WIDTH = 4
MAX_STRIDE = 4
LAYERS = ("conv", "down", "max_pool", "avg_pool", "up", "add_skip", "cat_skip", "global", "pyramid")


class RandomNet(nn.Module):
    """A stem, then ``layers`` (codes from LAYERS with a parameter each), then a 1x1 head resized to the input.
    A layer that does not fit where it lands (an upsampling at stride 1, a downsampling past MAX_STRIDE, a skip
    with nothing saved at this stride) becomes a plain 3x3 conv."""

    def __init__(self, layers: list[tuple[str, int]]):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1), nn.BatchNorm2d(WIDTH), nn.ReLU())
        self.plan: list[tuple[str, int, int, int]] = []  # (code, parameter, stride before and after the layer)
        self.convs = nn.ModuleList()
        stride, saved = 1, {1}
        for code, k in layers:
            if ((code == "down" or code in ("max_pool", "avg_pool") and k % 2) and stride == MAX_STRIDE
                    or code == "up" and stride == 1 or code in ("add_skip", "cat_skip") and stride not in saved):
                code = "conv"
            self.convs.append(self._conv(code, k))
            before = stride
            if code == "down" or code in ("max_pool", "avg_pool") and k % 2:
                stride *= 2
            elif code == "up":
                stride //= 2
            self.plan.append((code, k, before, stride))
            saved.add(stride)
        self.final_stride = stride
        self.head = nn.Conv2d(WIDTH, 3, 1)

    @staticmethod
    def _conv(code: str, k: int) -> nn.Module:
        if code == "conv":  # kernel 1/3/5, dilation 1/2, groups 1/2/4 by k
            kernel, dilation, groups = (1, 3, 5)[k % 3], 1 + k % 2, (1, 2, 4)[k % 3]
            return nn.Conv2d(WIDTH, WIDTH, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation,
                             groups=groups)
        if code == "down":  # kernel 2 (padding 0), 3 or 4 (padding 1), stride 2
            kernel = (2, 3, 4)[k % 3]
            return nn.Conv2d(WIDTH, WIDTH, kernel, stride=2, padding=0 if kernel == 2 else 1)
        return nn.Conv2d(2 * WIDTH if code == "cat_skip" else WIDTH, WIDTH, 1)

    def forward(self, image: Tensor) -> Tensor:
        x = self.stem(image)
        skips = {1: x}
        for (code, k, before, after), conv in zip(self.plan, self.convs):
            x = torch.relu(self._layer(code, k, x, skips.get(before), conv))
            skips[after] = x
        y = self.head(x)
        if self.final_stride == 1:
            return y
        return F.interpolate(y, size=image.shape[2:], mode="bilinear", align_corners=False)

    @staticmethod
    def _layer(code: str, k: int, x: Tensor, skip: Tensor | None, conv: nn.Module) -> Tensor:
        if code in ("conv", "down"):
            return conv(x)
        if code == "max_pool":  # odd k: stride 2 (kernel 2 or 3), even k: 3x3 stride 1
            return F.max_pool2d(x, 3, 1, 1) if k % 2 == 0 else F.max_pool2d(x, (2, 3)[k % 4 // 2], 2, k % 4 // 2)
        if code == "avg_pool":
            return F.avg_pool2d(x, 3, 1, 1) if k % 2 == 0 else F.avg_pool2d(x, (2, 3)[k % 4 // 2], 2, k % 4 // 2)
        if code == "up":  # bilinear or nearest, by scale factor or by size
            mode = ("bilinear", "nearest")[k % 2]
            if k % 4 < 2:
                return conv(F.interpolate(x, scale_factor=2, mode=mode))
            return conv(F.interpolate(x, size=(2 * x.shape[-2], 2 * x.shape[-1]), mode=mode))
        if code == "add_skip":
            return conv(x + skip)
        if code == "cat_skip":
            return conv(torch.cat([x, skip], dim=1))
        if code == "global":
            pooled = F.adaptive_avg_pool2d(x, 1) if k % 2 else F.adaptive_max_pool2d(x, 1)
            return x + F.interpolate(conv(pooled), size=x.shape[2:], mode="nearest")
        aspect = x.shape[-1] / x.shape[-2]  # pyramid: a grid of 2 rows keeping the aspect ratio
        pooled = F.adaptive_avg_pool2d(x, (2, max(1, round(2 * aspect))))
        return x + F.interpolate(conv(pooled), size=x.shape[2:], mode="bilinear", align_corners=False)


layers = st.lists(st.tuples(st.sampled_from(LAYERS), st.integers(0, 11)), min_size=1, max_size=7)
clips = st.tuples(
    st.integers(1, 2),  # clips in the batch
    st.integers(1, 3),  # grid rows
    st.integers(1, 3),  # grid cols
    st.sampled_from([4, 8, 12, 20]),  # block size: 1, 2, 3 or 5 px at stride 4
    st.integers(0, 2**16),  # seed
)


def build(spec: list[tuple[str, int]], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(RandomNet(spec), seed)


def frames(n: int, h: int, w: int, seed: int) -> Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def dense(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x)


def grid_of(n: int, gh: int, gw: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, gh, gw, generator=g) < torch.rand(1, generator=g)


@settings(max_examples=30, deadline=None)
@given(layers, clips, st.integers(1, 4))
def test_random_models_keep_the_invariants(spec, clip, step):
    """Invariants 1, 2 and 4 on random models, their block batch padded to a multiple of ``step`` blocks (as on
    CUDA) or not (step 1)."""
    n, gh, gw, block, seed = clip
    h, w = gh * block, gw * block
    model = build(spec, seed)
    full = torch.ones(n, gh, gw, dtype=torch.bool)
    # every block executed through the block path, on changing frames, equals the dense model
    engine = BlockSparseEngine(model, block, dense_when_full=False, batch_step=step)
    for t in range(2):
        x = frames(n, h, w, seed + t)
        out = engine(x, full)
        assert_close(out, dense(model, x))
    # a repeated frame with a random grid equals the dense output everywhere, block borders included
    reference = dense(model, x)
    for t in range(2):
        assert_close(engine(x, grid_of(n, gh, gw, seed + 10 + t)), reference)
    # a new frame: copied regions are bitwise the previous output (on the default dense-first engine too)
    for each in (engine, BlockSparseEngine(model, block, batch_step=step)):
        previous = each(x, full)
        for t in range(2):
            grid = grid_of(n, gh, gw, seed + 20 + t)
            out = each(frames(n, h, w, seed + 30 + t), grid)
            copied = ~grid.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, None].expand_as(out)
            assert torch.equal(out[copied], previous[copied])
            previous = out
