"""Pure-PyTorch twins of the block-movement kernels.

They are the fallback when the C++/CUDA extension cannot be built and the oracle the kernels are tested
against, so they favour plain indexing over speed. Blocks are named by linear index (see ``geometry``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def memory_format_of(t: Tensor) -> torch.memory_format:
    """channels_last when ``t`` is laid out so (and not trivially), else contiguous."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _grid_view(dense: Tensor, block: int) -> tuple[Tensor, int, int]:
    """View N x C x H x W as N x gh x gw x C x b x b (no copy)."""
    h, w = dense.shape[-2:]
    if h % block or w % block:
        raise ValueError(f"block size {block} does not divide the map size {h}x{w}")
    gh, gw = h // block, w // block
    view = dense.unflatten(2, (gh, block)).unflatten(4, (gw, block))
    return view.permute(0, 2, 4, 1, 3, 5), gh, gw


def _unravel(idx: Tensor, gh: int, gw: int) -> tuple[Tensor, Tensor, Tensor]:
    return idx // (gh * gw), (idx // gw) % gh, idx % gw


def split(dense: Tensor, idx: Tensor, block: int) -> Tensor:
    """Blocks ``idx`` of ``dense`` packed into B x C x b x b (same memory format as ``dense``)."""
    view, gh, gw = _grid_view(dense, block)
    n, gy, gx = _unravel(idx, gh, gw)
    return view[n, gy, gx].contiguous(memory_format=memory_format_of(dense))


def combine(blocks: Tensor, idx: Tensor, dense: Tensor, border: int = 0) -> Tensor:
    """Write packed ``blocks`` into ``dense`` at blocks ``idx`` (in place; a negative index skips that block);
    returns ``dense``. With ``border`` > 0 only each block's frame of that width is written (the first and last
    ``border`` rows and columns), the inner pixels keep their values."""
    keep = idx >= 0
    if not bool(keep.all()):
        blocks, idx = blocks[keep], idx[keep]
    b = blocks.shape[-1]
    view, gh, gw = _grid_view(dense, b)
    n, gy, gx = _unravel(idx, gh, gw)
    blocks = blocks.to(dense.dtype)
    if 0 < 2 * border < b:
        inner = torch.zeros(b, b, dtype=torch.bool, device=dense.device)
        inner[border : b - border, border : b - border] = True
        blocks = torch.where(inner, view[n, gy, gx], blocks)
    view[n, gy, gx] = blocks
    return dense


def transfer(src: Tensor, dst: Tensor, idx: Tensor, block: int) -> Tensor:
    """Copy blocks ``idx`` of ``src`` into the same blocks of ``dst`` (in place); returns ``dst``."""
    return combine(split(src, idx, block), idx, dst)


def block_pad(
    blocks: Tensor,
    block_pos: Tensor,
    stale: Tensor,
    idx: Tensor,
    halo: tuple[int, int, int, int],
    replicate: bool,
    value: float,
) -> Tensor:
    """Blocks ``idx`` with a halo of (top, bottom, left, right) pixels taken from their neighbours.

    A pixel of block ``j`` comes from ``blocks[block_pos[j]]`` (this frame's packed blocks) when
    ``block_pos[j] >= 0``, else from the ``stale`` map (the previous frame's). Outside the map the halo holds
    ``value`` (conv zeros, max-pool -inf) or, with ``replicate``, the nearest edge pixel (bilinear
    interpolation's clamping). Returns B x C x (b+top+bottom) x (b+left+right) in ``stale``'s memory format.
    """
    current = stale.clone()
    executed = torch.nonzero(block_pos >= 0).reshape(-1)
    if executed.numel():
        combine(blocks[block_pos[executed]], executed, current)
    return pad_from_map(current, idx, blocks.shape[-1], halo, replicate, value)


def pad_from_map(
    dense: Tensor, idx: Tensor, block: int, halo: tuple[int, int, int, int], replicate: bool, value: float
) -> Tensor:
    """Blocks ``idx`` of a full map with their halo (see ``block_pad``)."""
    _, _, h, w = dense.shape
    top, bottom, left, right = halo
    n, gy, gx = _unravel(idx, h // block, w // block)
    ys = (gy * block - top)[:, None] + torch.arange(block + top + bottom, device=dense.device)
    xs = (gx * block - left)[:, None] + torch.arange(block + left + right, device=dense.device)
    out = dense[n[:, None, None], :, ys.clamp(0, h - 1)[:, :, None], xs.clamp(0, w - 1)[:, None, :]]
    out = out.permute(0, 3, 1, 2)
    if not replicate:
        outside = ((ys < 0) | (ys >= h))[:, :, None] | ((xs < 0) | (xs >= w))[:, None, :]
        out = out.masked_fill(outside[:, None], value)
    return out.contiguous(memory_format=memory_format_of(dense))


def upsample_blocks(padded: Tensor, factor: int) -> Tensor:
    """Bilinear resize (align_corners=False) of blocks with a 1-pixel halo (B x C x (b+2) x (b+2), the halo from
    neighbours or edge-clamped) by ``factor``, cropped to the blocks' own outputs: B x C x b*f x b*f, a view."""
    b = padded.shape[-1] - 2
    out = F.interpolate(padded, size=((b + 2) * factor, (b + 2) * factor), mode="bilinear", align_corners=False)
    return out[..., factor : factor + b * factor, factor : factor + b * factor]


def upsample_into(padded: Tensor, factor: int, idx: Tensor, dense: Tensor) -> Tensor:
    """``upsample_blocks`` written into ``dense`` at blocks ``idx`` (in place, negative indices skip); returns
    ``dense``."""
    return combine(upsample_blocks(padded, factor), idx, dense)
