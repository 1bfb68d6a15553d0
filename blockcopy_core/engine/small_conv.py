"""Convolutions on tiny blocks as one matrix product (CPU).

With 64 px blocks the deepest layers of a ResNet see 2 x 2 blocks (4 x 4 with their halo). oneDNN's direct
convolution runs such small images far below the cores' peak, while the same work as one GEMM does not: gather
every output pixel's window (im2col, channels_last so a window row is contiguous) into a (pixels x k*k*C) matrix
and multiply it by the weight. Measured on 2 cores (64 blocks, 64-2048 channels, 3x3 and 1x1, stride 1 and 2):
1.1-1.7x faster for 2 x 2 outputs, 2.2-2.9x for 1 x 1, slower from 4 x 4 on; so only outputs of at most
``GEMM_MAX_OUTPUT`` pixels a side take this path. The result equals the convolution up to float rounding order.
"""

from __future__ import annotations

import torch
from torch import Tensor

GEMM_MAX_OUTPUT = 2


def _output_side(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def gemm_pays(x: Tensor, weight: Tensor, stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> bool:
    """Whether ``conv2d(x, weight)`` without padding runs faster as ``conv_as_gemm`` here."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or groups != 1 or dilation != (1, 1):
        return False
    if x.dim() != 4 or weight.dim() != 4 or stride[0] != stride[1]:
        return False
    cl = torch.channels_last
    if not (x.is_contiguous(memory_format=cl) and weight.is_contiguous(memory_format=cl)):
        return False
    kh, kw = weight.shape[-2:]
    out_h, out_w = _output_side(x.shape[2], kh, stride[0]), _output_side(x.shape[3], kw, stride[1])
    return 0 < out_h <= GEMM_MAX_OUTPUT and 0 < out_w <= GEMM_MAX_OUTPUT


def conv_as_gemm(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """``conv2d(x, weight, bias, stride)`` with padding 0 for channels_last ``x`` and ``weight``, as im2col + GEMM;
    the result is channels_last like the convolution's."""
    out_channels, channels, kh, kw = weight.shape
    pixels = x.permute(0, 2, 3, 1)  # N x H x W x C, contiguous
    if kh == kw == 1:
        windows = pixels[:, ::stride, ::stride]
        out_h, out_w = windows.shape[1:3]
    else:
        windows = pixels.unfold(1, kh, stride).unfold(2, kw, stride)  # N x oh x ow x C x kh x kw
        out_h, out_w = windows.shape[1:3]
        windows = windows.permute(0, 1, 2, 4, 5, 3)  # the weight's (kh, kw, C) order
    columns = windows.reshape(-1, kh * kw * channels)
    matrix = weight.permute(0, 2, 3, 1).reshape(out_channels, -1)  # a view of a channels_last weight
    out = columns @ matrix.t() if bias is None else torch.addmm(bias, columns, matrix.t())
    return out.view(x.shape[0], out_h, out_w, out_channels).permute(0, 3, 1, 2)
