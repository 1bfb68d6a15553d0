"""Invariant 5: state is one frame deep, so a 500-frame clip holds no more memory than a few warm frames."""

from __future__ import annotations

import gc

import torch
from test_engine_support import SmallNet, randomize_bn
from torch import Tensor

from blockcopy_core import BlockCopyModel
from blockcopy_core.policies import BlockPolicy, ClipState, grid_size, register_policy


class ExactHalf(BlockPolicy):
    """A random half of the blocks every frame: the packed batch keeps one size, so state bytes are comparable."""

    def __init__(self):
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        n, gh, gw = grid_size(frames, state)
        order = torch.rand(n, gh * gw, generator=self.generator).argsort(dim=1)
        return (order < gh * gw // 2).reshape(n, gh, gw)


def live_objects() -> tuple[int, int]:
    """(all gc-tracked Python objects, tensors among them) after a collection."""
    gc.collect()
    objects = gc.get_objects()
    return len(objects), sum(issubclass(type(obj), torch.Tensor) for obj in objects)


def test_memory_does_not_grow_over_500_frames():
    torch.manual_seed(0)
    register_policy("exact_half", lambda settings: ExactHalf())
    model = BlockCopyModel(randomize_bn(SmallNet()), {"block_policy": "exact_half", "block_size": 16})
    clip = torch.randn(8, 2, 3, 32, 48, generator=torch.Generator().manual_seed(0))  # 8 distinct frames, cycled

    def run(frames: range) -> None:
        for t in frames:
            model(clip[t % 8])

    run(range(300))  # warm: torch's internal caches fill up (a few dozen objects over the first hundreds of frames)
    state_bytes, (objects, tensors) = model.engine.state_nbytes(), live_objects()
    run(range(300, 500))
    assert model.last_execution_fraction == 0.5
    assert model.engine.state_nbytes() == state_bytes  # stored maps, carried blocks, previous output
    now_objects, now_tensors = live_objects()
    assert now_tensors <= tensors
    # leaking one object per frame would add 200; cache noise stays far below
    assert now_objects - objects < 100, f"{now_objects - objects} more Python objects after 200 frames"
