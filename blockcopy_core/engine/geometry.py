"""Block geometry: which blocks of a frame batch execute, and how far each windowed op looks past a block.

A frame batch N x C x H x W is cut into a gh x gw grid of square blocks of ``block_size`` pixels. Executed
blocks are packed n-major, row-major into a batch B x C x b x b; a block is named by its linear index
``n * gh * gw + gy * gw + gx``. Deeper layers see the same grid with smaller blocks (b / stride).

The packed batch may be padded to a multiple of a step (``batch_step``) with repeats of an executed block, so
that its size takes few values across frames: a GPU library plans each new convolution shape anew (on an H100
that cost more than the frame itself, docs/benchmarks.md). Padded rows are computed and never written back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BlockLayout:
    """The executed and copied blocks of one frame batch."""

    grid: Tensor  # bool N x gh x gw, True = execute
    exec_idx: Tensor  # int64 (B,): linear indices of the packed blocks: the executed ones, then padding repeats
    write_idx: Tensor  # int64 (B,): where each packed block is written back: exec_idx with -1 on padded rows
    stale_idx: Tensor  # int64: linear indices of copied (non-executed) blocks
    block_pos: Tensor  # int64 (N * gh * gw,): each block's position in the packed batch, -1 if copied
    host_grid: Tensor  # ``grid`` on the CPU, where the host reads it without waiting for a GPU

    @classmethod
    def from_grid(cls, grid: Tensor, batch_step: int = 1) -> BlockLayout:
        """The layout of ``grid``, its packed batch padded to a multiple of ``batch_step`` blocks (at most all
        blocks) by repeating the first executed block."""
        if grid.dim() != 3 or grid.dtype != torch.bool:
            raise ValueError(f"execution grid must be a bool tensor N x gh x gw, got {grid.dtype} {tuple(grid.shape)}")
        if batch_step < 1:
            raise ValueError(f"batch_step must be at least 1, got {batch_step}")
        flat = grid.reshape(-1)
        executed = torch.nonzero(flat).reshape(-1)
        block_pos = torch.full((flat.numel(),), -1, dtype=torch.int64, device=grid.device)
        block_pos[executed] = torch.arange(executed.numel(), device=grid.device)
        padding = min(-executed.numel() % batch_step, flat.numel() - executed.numel()) if executed.numel() else 0
        exec_idx = torch.cat([executed, executed[:1].expand(padding)])
        write_idx = torch.cat([executed, executed.new_full((padding,), -1)])
        return cls(grid, exec_idx, write_idx, torch.nonzero(~flat).reshape(-1), block_pos, grid.cpu())

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.grid.shape[1], self.grid.shape[2]

    @property
    def num_exec(self) -> int:
        """Executed blocks (padding rows not counted)."""
        return self.grid.numel() - self.stale_idx.numel()

    @property
    def all_executed(self) -> bool:
        return self.stale_idx.numel() == 0

    def on(self, device: torch.device) -> BlockLayout:
        """The same layout with its index tensors on ``device`` (kernels index on the data's device)."""
        if self.exec_idx.device == device:
            return self
        return BlockLayout(*(t.to(device) for t in (self.grid, self.exec_idx, self.write_idx, self.stale_idx,
                                                      self.block_pos)), self.host_grid)

    def carried_from(self, previous: BlockLayout) -> Tensor:
        """For each block ``previous`` packed (in its packed order): its index when it is copied now, else -1 (and
        -1 for padding rows). Those are the blocks whose last-frame values must reach the stored maps before this
        frame reads them."""
        return torch.where(self.grid.reshape(-1)[previous.exec_idx], -1, previous.write_idx)

    def newly_copied(self, previous: BlockLayout) -> Tensor:
        """Linear indices of the blocks ``previous`` executed and this layout copies, on this layout's device."""
        changed = (previous.host_grid & ~self.host_grid).reshape(-1)
        return torch.nonzero(changed).reshape(-1).to(self.exec_idx.device)

    def block_of_level(self, map_hw: tuple[int, int]) -> int | None:
        """Block side at a full map of size ``map_hw``, or None when the map is not cut by this grid."""
        gh, gw = self.grid_hw
        (h, w) = map_hw
        if h % gh or w % gw or h // gh != w // gw:
            return None
        return h // gh


def grid_shape(frame_hw: tuple[int, int], block_size: int) -> tuple[int, int]:
    """Grid of blocks for a frame size; the block size must divide the frame."""
    h, w = frame_hw
    if block_size <= 0 or h % block_size or w % block_size:
        raise ValueError(f"block size {block_size} does not divide the frame size {h}x{w}")
    return h // block_size, w // block_size


@dataclass(frozen=True)
class Window:
    """A sliding-window op (conv / pool) along both spatial dims: kernel, stride, padding, dilation."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def halo(self) -> tuple[int, int, int, int]:
        """Pixels needed beyond a block (top, bottom, left, right) so that the op with padding 0 yields exactly
        the block's own outputs: before = padding, after = dilation * (kernel - 1) - padding - stride + 1."""
        after = [d * (k - 1) - p - s + 1 for k, s, p, d in zip(self.kernel, self.stride, self.padding, self.dilation)]
        return self.padding[0], max(after[0], 0), self.padding[1], max(after[1], 0)


def pair(value: int | tuple[int, ...] | list[int], name: str) -> tuple[int, int]:
    """An int or a 1/2-sequence as a pair (PyTorch's convention for conv / pool arguments)."""
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return value
