"""Policies that do not learn: every block, no block, or each block at random."""

from __future__ import annotations

from collections.abc import Sequence

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
    """Execute each block independently with probability ``p``. A clip started with a seed draws from a generator
    of its own; otherwise from one generator seeded ``seed`` (reproducible either way)."""

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random policy probability must be in [0, 1], got {p}")
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)
        self.clip_generators: dict[int, torch.Generator] = {}  # by batch position

    def start_clips(self, positions: Sequence[int] | None, seeds: Sequence[int] | None) -> None:
        if positions is None:
            self.clip_generators.clear()
        if seeds is None:
            for position in positions or ():
                self.clip_generators.pop(position, None)
            return
        for position, seed in zip(range(len(seeds)) if positions is None else positions, seeds, strict=True):
            self.clip_generators[position] = torch.Generator().manual_seed(seed)

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        n, gh, gw = grid_size(frames, state)
        draws = [torch.rand((gh, gw), generator=self.clip_generators.get(i, self.generator)) for i in range(n)]
        return torch.stack(draws) < self.p
