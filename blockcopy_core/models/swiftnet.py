"""SwiftNet (Orsic et al., CVPR 2019): a ResNet encoder, spatial pyramid pooling and a light ladder decoder.

Module names and parameter shapes follow the published BlockCopy checkpoints exactly, so that
``swiftnet_rn18.pth`` / ``swiftnet_rn50.pth`` load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .resnet import build_resnet

NUM_FEATURES = 128
SPP_LEVEL_FEATURES = 42
SPP_GRIDS = (8, 4, 2)


def upsample(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class BNReluConv(nn.Sequential):
    """Pre-activation unit: BatchNorm -> ReLU -> Conv (``norm``, ``relu``, ``conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_channels))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias))


class SpatialPyramidPooling(nn.Module):
    """Average-pools the deepest features to a few coarse grids and fuses them back at full size.

    The grids keep the input's aspect ratio: 8 rows at 1:2 frames pool to 8x16, then 4x8 and 2x4.
    """

    def __init__(self, in_channels: int, grids: tuple[int, ...] = SPP_GRIDS):
        super().__init__()
        self.grids = grids
        self.spp = nn.Sequential()
        self.spp.add_module("spp_bn", BNReluConv(in_channels, NUM_FEATURES, kernel_size=1))
        for i in range(len(grids)):
            self.spp.add_module(f"spp{i}", BNReluConv(NUM_FEATURES, SPP_LEVEL_FEATURES, kernel_size=1))
        fused = NUM_FEATURES + len(grids) * SPP_LEVEL_FEATURES
        self.spp.add_module("spp_fuse", BNReluConv(fused, NUM_FEATURES, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.spp[0](x)
        size = x.shape[2:]
        aspect = size[1] / size[0]
        levels = [x]
        for i, rows in enumerate(self.grids):
            grid = (rows, max(1, round(aspect * rows)))
            pooled = F.adaptive_avg_pool2d(x, grid)
            levels.append(upsample(self.spp[i + 1](pooled), size))
        return self.spp[-1](torch.cat(levels, dim=1))


class UpsampleBlend(nn.Module):
    """One decoder step: upsample to the skip's size, add the projected skip, blend with a 3x3 conv."""

    def __init__(self, skip_channels: int):
        super().__init__()
        self.bottleneck = BNReluConv(skip_channels, NUM_FEATURES, kernel_size=1)
        self.blend_conv = BNReluConv(NUM_FEATURES, NUM_FEATURES, kernel_size=3)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        skip = self.bottleneck(skip)
        return self.blend_conv(upsample(x, skip.shape[2:]) + skip)


class SwiftNet(nn.Module):
    """Semantic segmentation network; ``forward`` returns per-class logits at the input resolution."""

    def __init__(self, backbone: str = "resnet18", num_classes: int = 19):
        super().__init__()
        self.backbone = build_resnet(backbone)
        self.spp = SpatialPyramidPooling(self.backbone.out_channels)
        # Deepest skip first: upsample.0 takes layer3's features, upsample.2 layer1's.
        self.upsample = nn.ModuleList(UpsampleBlend(c) for c in reversed(self.backbone.skip_channels))
        self.logits = BNReluConv(NUM_FEATURES, num_classes, kernel_size=1, bias=True)
        self.num_classes = num_classes

    def forward(self, image: Tensor) -> Tensor:
        x, skips = self.backbone(image)
        x = self.spp(x)
        for stage, skip in zip(self.upsample, reversed(skips), strict=True):
            x = stage(x, skip)
        return upsample(self.logits(x), image.shape[2:])


BACKBONES = ("resnet18", "resnet34", "resnet50")
TOTAL_STRIDE = 32
"""The encoder's total stride: inputs are padded to a multiple of it, and a BlockCopy block must be one."""


def build_swiftnet(backbone: str = "resnet18", num_classes: int = 19) -> SwiftNet:
    """SwiftNet with a ResNet-18/34/50 encoder (``backbone`` also accepts ``rn18``-style short names)."""
    name = {"rn18": "resnet18", "rn34": "resnet34", "rn50": "resnet50"}.get(backbone, backbone)
    return SwiftNet(name, num_classes)
