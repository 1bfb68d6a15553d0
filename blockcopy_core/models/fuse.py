"""Folding BatchNorm into the preceding convolution for inference."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every Conv2d->BatchNorm2d pair folded into one conv.

    Pairs are found as attributes ``convK``/``bnK`` of one module and as consecutive entries of an
    ``nn.Sequential`` (ResNet's downsample); each pair is fused by torch's ``fuse_conv_bn_eval`` (a conv with
    bias computing ``bn(conv(x))`` from ``bn``'s running statistics) and the BN becomes an ``nn.Identity``.
    Pre-activation units (BN -> ReLU -> conv) cannot fold and stay.
    """
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:], strict=False):
                conv, bn = module._modules[a], module._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[a] = fuse_conv_bn_eval(conv, bn)
                    module._modules[b] = nn.Identity()
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and name.startswith("conv"):
                bn = getattr(module, "bn" + name.removeprefix("conv"), None)
                if isinstance(bn, nn.BatchNorm2d):
                    setattr(module, name, fuse_conv_bn_eval(child, bn))
                    setattr(module, "bn" + name.removeprefix("conv"), nn.Identity())
    return model
