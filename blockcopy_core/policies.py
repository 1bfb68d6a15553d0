"""Execution policies: which blocks of a frame batch to run.

A policy is an ``nn.Module`` (so a learned one can hold parameters and move with the wrapper) called with the
frame batch and the wrapper's ``ClipState``; it returns a bool grid N x gh x gw (True = execute). After the
frame ran, the wrapper calls ``observe`` with the output, which a learned policy uses for its reward; the
fixed policies here ignore it. New policies register a factory under a name with ``register_policy``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class ClipState:
    """What the wrapper knows about the clips in flight, as of the previous frame (None before the first)."""

    block_size: int
    grid_hw: tuple[int, int] | None = None
    frame_index: int = 0  # frames run since the last full reset
    previous_output: Tensor | None = None  # N x K x H x W
    previous_grid: Tensor | None = None  # bool N x gh x gw
    frame_state: Tensor | None = None  # N x 3 x H x W: per block, the pixels of the frame it last executed on
    execution_ema: float | None = None  # running execution fraction (momentum ``block_cost_momentum``)


class BlockPolicy(nn.Module):
    """Base class: ``forward(frames, state) -> bool grid``; ``observe`` is called after each frame."""

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        raise NotImplementedError

    def observe(self, frames: Tensor, grid: Tensor, output: Tensor, state: ClipState) -> None:
        """Called after the frame ran (``state`` is still the previous frame's); fixed policies ignore it."""

    @staticmethod
    def grid_like(frames: Tensor, state: ClipState) -> tuple[int, int, int]:
        return frames.shape[0], frames.shape[-2] // state.block_size, frames.shape[-1] // state.block_size


class AllPolicy(BlockPolicy):
    """Execute every block (block-sparse machinery with a full grid: dense cost, dense result)."""

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        return torch.ones(self.grid_like(frames, state), dtype=torch.bool)


class NonePolicy(BlockPolicy):
    """Execute nothing: only the first frame of a clip (forced by the wrapper) is computed."""

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        return torch.zeros(self.grid_like(frames, state), dtype=torch.bool)


class RandomPolicy(BlockPolicy):
    """Execute each block independently with probability ``p`` (seeded generator, reproducible)."""

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random policy probability must be in [0, 1], got {p}")
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        return torch.rand(self.grid_like(frames, state), generator=self.generator) < self.p


PolicyFactory = Callable[[Mapping[str, Any]], BlockPolicy]
_REGISTRY: dict[str, PolicyFactory] = {
    "all": lambda settings: AllPolicy(),
    "none": lambda settings: NonePolicy(),
    "random": lambda settings: RandomPolicy(0.5),
}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make ``block_policy=name`` build ``factory(settings)`` (e.g. the learned ``rl_semseg`` policy)."""
    _REGISTRY[name] = factory


# Policies living in their own module, which registers them when imported.
_MODULES = {"rl_semseg": "blockcopy_core.rl_policy"}


def build_policy(settings: Mapping[str, Any]) -> BlockPolicy:
    """The policy named by ``settings['block_policy']``."""
    name = settings["block_policy"]
    if name == "static":
        raise ValueError("block_policy 'static' means the plain dense model: run it without BlockCopyModel")
    if name not in _REGISTRY and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _REGISTRY:
        raise ValueError(f"unknown block_policy {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name](settings)
