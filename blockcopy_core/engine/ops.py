"""The block movements, dispatched to the compiled kernels or, without them, to the PyTorch twins.

The kernels want contiguous tensors (NCHW or channels_last) of one dtype and int64 block indices on the data's
device; these wrappers arrange that, so callers can pass whatever the model produced.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from . import twins
from .kernels import extension
from .twins import memory_format_of

KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _kernels_for(dense: Tensor) -> ModuleType | None:
    """The compiled kernels when they handle ``dense`` (device, dtype, contiguous layout), else None."""
    if dense.dtype not in KERNEL_DTYPES:
        return None
    if not dense.is_contiguous(memory_format=memory_format_of(dense)):
        return None
    return extension(dense.device)


def _rows_contiguous(blocks: Tensor, fmt: torch.memory_format) -> bool:
    """Whether each block row is contiguous in ``fmt`` (what the CPU combine kernel needs; a crop is fine)."""
    if blocks.device.type != "cpu":
        return blocks.is_contiguous(memory_format=fmt)
    b, c = blocks.shape[-1], blocks.shape[1]
    if fmt == torch.channels_last:
        return (blocks.stride(1) == 1 or c == 1) and (blocks.stride(3) == c or b == 1)
    return blocks.stride(3) == 1 or b == 1


def _like_map(blocks: Tensor, dense: Tensor) -> Tensor:
    """``blocks`` in ``dense``'s dtype with rows laid out like ``dense`` (copied only when needed)."""
    fmt = memory_format_of(dense)
    blocks = blocks.to(dense.dtype)
    return blocks if _rows_contiguous(blocks, fmt) else blocks.contiguous(memory_format=fmt)


def split(dense: Tensor, idx: Tensor, block: int) -> Tensor:
    """Blocks ``idx`` of ``dense`` packed into B x C x b x b."""
    ext = _kernels_for(dense)
    if ext is None:
        return twins.split(dense, idx, block)
    return ext.split(dense, idx, block)


def combine(blocks: Tensor, idx: Tensor, dense: Tensor, border: int = 0) -> Tensor:
    """Write ``blocks`` into ``dense`` at ``idx`` in place (a negative index skips that block); returns ``dense``.
    ``border`` > 0 writes only each block's frame of that width (what neighbours' halos read)."""
    ext = _kernels_for(dense)
    if ext is None:
        return twins.combine(blocks, idx, dense, border)
    ext.combine(_like_map(blocks, dense), idx, dense, border)
    return dense


def transfer(src: Tensor, dst: Tensor, idx: Tensor, block: int) -> Tensor:
    """Copy blocks ``idx`` from ``src`` into ``dst`` in place; returns ``dst``."""
    ext = _kernels_for(dst)
    if ext is None or memory_format_of(src) != memory_format_of(dst):
        return twins.transfer(src, dst, idx, block)
    ext.transfer(src.to(dst.dtype).contiguous(memory_format=memory_format_of(dst)), dst, idx, block)
    return dst


def block_pad(
    blocks: Tensor,
    block_pos: Tensor,
    stale: Tensor,
    idx: Tensor,
    halo: tuple[int, int, int, int],
    replicate: bool,
    value: float,
    out: Tensor | None = None,
) -> Tensor:
    """Blocks ``idx`` with a (top, bottom, left, right) halo, from this frame's ``blocks`` where executed
    (``block_pos``) and from the ``stale`` map elsewhere; see ``twins.block_pad``. ``out``: a buffer of the
    result's shape, dtype and layout to write into (reused across frames, it saves faulting in fresh pages)."""
    ext = _kernels_for(stale)
    if ext is None:
        padded = twins.block_pad(blocks, block_pos, stale, idx, halo, replicate, value)
        return padded if out is None else out.copy_(padded)
    return ext.block_pad(_like_map(blocks, stale), block_pos, stale, idx, list(halo), replicate, value, out)


def upsample_into(padded: Tensor, factor: int, idx: Tensor, dense: Tensor) -> Tensor:
    """Bilinear resize by ``factor`` of blocks with a 1-pixel halo (``twins.upsample_blocks``), written into
    ``dense`` at ``idx`` in place (a negative index skips that block); returns ``dense``. On a CPU in channels_last
    one kernel resizes straight into the map; elsewhere PyTorch resizes and ``combine`` writes."""
    ext = _kernels_for(dense)
    if (ext is not None and dense.device.type == "cpu" and padded.dtype == dense.dtype
            and memory_format_of(dense) == torch.channels_last):
        ext.upsample_into(padded.contiguous(memory_format=torch.channels_last), factor, idx, dense)
        return dense
    return combine(twins.upsample_blocks(padded, factor), idx, dense)


def check_device_errors(device: torch.device) -> None:
    """Raise if a CUDA kernel on ``device`` met a block index outside its map since the last check.

    The CUDA kernels check indices on the device (an index out of range moves nothing and sets a flag) instead
    of synchronising with the host before every movement; the engine reads the flag once per frame."""
    if device.type != "cuda":
        return
    ext = extension(device)
    if ext is not None and ext.take_index_error(device.index if device.index is not None else -1):
        raise RuntimeError(f"a block movement on {device} got a block index or block_pos entry outside its map "
                           "(nothing was read or written there)")
