"""What every execution policy is: an ``nn.Module`` that maps a frame batch to a bool grid of blocks to run.

A policy is a module (so a learned one holds parameters and moves with the wrapper) called with the frame batch
and the wrapper's :class:`ClipState`; it returns a bool grid N x gh x gw (True = execute). After the frame ran,
the wrapper calls ``observe`` with the output, which a learned policy uses for its reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from ..engine import grid_shape


@dataclass
class ClipState:
    """What the wrapper knows about the clips in flight, as of the previous frame (None before the first)."""

    block_size: int
    previous_output: Tensor | None = None  # N x K x H x W
    previous_grid: Tensor | None = None  # bool N x gh x gw
    frame_state: Tensor | None = None  # N x 3 x H x W: per block, the pixels of the frame it last executed on


class BlockPolicy(nn.Module):
    """Base class: ``forward(frames, state) -> bool grid``; ``observe`` is called after each frame."""

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        raise NotImplementedError

    def observe(self, frames: Tensor, grid: Tensor, output: Tensor, state: ClipState) -> None:
        """Called after the frame ran (``state`` is still the previous frame's); fixed policies ignore it."""

    def start_clips(self, positions: Sequence[int] | None, seeds: Sequence[int] | None) -> None:
        """Called when new clips start at the batch ``positions`` (None: all), with one seed per clip when the
        caller has them (the job derives each from ``--seed`` and the clip id). A policy that draws random numbers
        seeds a clip's draws from its seed, so a clip's grids never depend on which clips ran before it."""


def grid_size(frames: Tensor, state: ClipState) -> tuple[int, int, int]:
    """(N, gh, gw): the shape of the grid a policy returns for ``frames``."""
    return (frames.shape[0], *grid_shape(tuple(frames.shape[-2:]), state.block_size))
