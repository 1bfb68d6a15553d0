"""Shared helpers for the engine tests: a small network the engine was not written for, BN randomisation,
the invariants' tolerance check. (No tests here.)"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SmallNet(nn.Module):
    """Padded 3x3 convs, a stride-2 conv, max-pool, residual adds, a 1x1 stride-2 shortcut, bilinear upsampling
    with a skip, and a final bilinear resize to the input size: total stride 8."""

    def __init__(self, classes: int = 5, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv_a = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(width)
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(width, 2 * width, 1, stride=2)
        self.deep = nn.Conv2d(2 * width, 2 * width, 5, stride=2, padding=2)
        self.fuse = nn.Conv2d(2 * width, width, 3, padding=1)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, image: Tensor) -> Tensor:
        x = self.pool(self.stem(image))  # stride 2
        x = torch.relu(self.bn_a(self.conv_a(x)) + x)
        skip = self.down(x) + self.shortcut(x)  # stride 4
        deep = torch.relu(self.deep(skip))  # stride 8
        up = F.interpolate(deep, size=skip.shape[2:], mode="bilinear", align_corners=False)
        y = self.fuse(up + skip)
        logits = self.head(y)
        return F.interpolate(logits, size=image.shape[2:], mode="bilinear", align_corners=False)


class ReturnsFeatures(nn.Module):
    """Returns an intermediate map that is also the input of a padded conv (a stored map)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.a(x)
        return features, self.b(features)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine parameters and running statistics (so block errors show), eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    return model.eval()


def assert_close(actual: Tensor, reference: Tensor) -> None:
    """The invariants' "equal": max abs diff <= 1e-4 x max abs of the reference."""
    err = (actual - reference).abs().max().item()
    scale = reference.abs().max().item()
    assert err <= 1e-4 * scale, f"max abs diff {err:.3g} > 1e-4 x {scale:.3g}"


def random_grid(n: int, gh: int, gw: int, p: float, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, gh, gw, generator=g) < p
