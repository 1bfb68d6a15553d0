"""The learned policy's networks (``block_policy_net``): each maps its input to one logit per block.

Both take the frame, the frame state, the previous softmax output - 0.5 and the previous grid - 0.5 (26 channels) at
a fixed number of input pixels per block side, so their cost follows the block grid, never the frame's pixels:

- ``paper``: the release's ResNet-8 at 32 pixels per block (1/4 * 128 / block_size of the frame), every input
  resized nearest; 7.53 GMACs for an 8x16 grid.
- ``compact``: a slimmer ResNet (widths 16/32/64) at 8 pixels per block, frames area-averaged (each input pixel
  the mean of its cell, so small motions are not skipped by the sampling), and one more channel
  (``change_channels``): the mean absolute difference between frame and frame state over each cell, which a
  motion inside a cell shows even where it leaves the cell's mean alone; 0.095 GMACs for an 8x16 grid.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """CIFAR-style residual block: two 3x3 convs with BatchNorm, a 1x1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class PaperNet(nn.Module):
    """ResNet-8 (one block per stage, widths 32/64/128, strides 1/2/2) and three stride-2 convs to one logit
    per block: 32 input pixels per block side come out as one value."""

    pixels_per_block = 32
    resize = "nearest"
    change_channels = 0

    def __init__(self, in_channels: int):
        super().__init__()
        self.stem = conv_bn_relu(in_channels, 32, 1)
        self.stages = nn.Sequential(BasicBlock(32, 32, 1), BasicBlock(32, 64, 2), BasicBlock(64, 128, 2))
        self.head = nn.Sequential(  # flat, as in the release's policy files
            nn.Conv2d(128, 128, 3, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 128, 3, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 1, 3, 2, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))[:, 0]


class CompactNet(nn.Module):
    """Stem (16), two stride-2 residual blocks (32, 64) and a stride-2 conv to one logit per block: 8 input
    pixels per block side come out as one value; its receptive field spans about 5 blocks."""

    pixels_per_block = 8
    resize = "area"
    change_channels = 1

    def __init__(self, in_channels: int):
        super().__init__()
        self.stem = conv_bn_relu(in_channels, 16, 1)
        self.stages = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.head = nn.Sequential(conv_bn_relu(64, 64, 2), nn.Conv2d(64, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))[:, 0]


NETS: dict[str, type[PaperNet] | type[CompactNet]] = {"paper": PaperNet, "compact": CompactNet}
