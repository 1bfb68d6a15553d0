"""Folding BatchNorm into the preceding convolution for inference."""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``bn(conv(x))`` with ``bn``'s running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every Conv2d->BatchNorm2d pair folded into one conv.

    Pairs are found as attributes ``convK``/``bnK`` of one module and as consecutive entries of an
    ``nn.Sequential`` (ResNet's downsample). Pre-activation units (BN -> ReLU -> conv) cannot fold and stay.
    """
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:], strict=False):
                conv, bn = module._modules[a], module._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[a] = fold_conv_bn(conv, bn)
                    module._modules[b] = nn.Identity()
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and name.startswith("conv"):
                bn = getattr(module, "bn" + name.removeprefix("conv"), None)
                if isinstance(bn, nn.BatchNorm2d):
                    setattr(module, name, fold_conv_bn(child, bn))
                    setattr(module, "bn" + name.removeprefix("conv"), nn.Identity())
    return model
