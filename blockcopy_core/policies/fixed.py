"""Policies that do not learn: every block, no block, or each block at random."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import BlockPolicy, ClipState, grid_size


class AllPolicy(BlockPolicy):
    """Execute every block (block-sparse machinery with a full grid: dense cost, dense result)."""

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        return torch.ones(grid_size(frames, state), dtype=torch.bool)


class NonePolicy(BlockPolicy):
    """Execute nothing: only the first frame of a clip (forced by the wrapper) is computed."""

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        return torch.zeros(grid_size(frames, state), dtype=torch.bool)


class RandomPolicy(BlockPolicy):
    """Execute each block independently with probability ``p`` (seeded generator, reproducible)."""

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random policy probability must be in [0, 1], got {p}")
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        return torch.rand(grid_size(frames, state), generator=self.generator) < self.p
