"""BlockCopyModel: a segmentation model made block-sparse and temporally stateful by an execution policy.

Per frame batch (one frame of each of N clips side by side) the policy picks the blocks to execute, the
engine runs them through the unchanged base model and copies the rest from the previous output.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .engine import BlockLayout, BlockSparseEngine, ops
from .policies import BlockPolicy, ClipState, build_policy, grid_size
from .settings import BlockCopySettings

STAGES = ("policy", "network", "update")  # of a frame, timed in ``BlockCopyModel.stage_seconds``


class BlockCopyModel(nn.Module):
    """Wraps ``base_model`` (frames N x 3 x H x W -> logits N x K x H x W) with a BlockCopy policy.

    Call it on consecutive frame batches of the same clips; ``reset_temporal()`` starts new clips (all of them,
    or only the listed batch positions). The first frame of a clip executes every block whatever the policy.
    After each call ``last_grid`` (bool N x gh x gw) and ``last_execution_fraction`` (executed share of all
    blocks of the batch; per image in ``last_execution_fractions``) describe what ran. ``stage_seconds`` sums the
    wall time of the three stages of every frame: ``policy`` (choosing the grid), ``network`` (the engine and the
    clip state) and ``update`` (the policy's reward and learning step); on CUDA they time launches, not kernels.
    """

    def __init__(self, base_model: nn.Module, settings: BlockCopySettings | Mapping[str, Any]):
        super().__init__()
        if not isinstance(settings, BlockCopySettings):
            settings = BlockCopySettings.from_dict(settings)
        self.settings = settings
        self.base_model = base_model
        self.policy: BlockPolicy = build_policy(self.settings)
        parameter = next(base_model.parameters(), None)
        if parameter is not None:  # a learned policy lives beside the model (in float32 whatever the model's dtype)
            self.policy.to(parameter.device)
        self.engine = BlockSparseEngine(base_model, settings.block_size)
        self.clip_state = ClipState(block_size=settings.block_size)
        self._fresh_images: set[int] = set()
        self.last_grid: Tensor | None = None
        self.last_execution_fraction: float | None = None
        self.last_execution_fractions: Tensor | None = None
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)

    @property
    def last_policy_macs(self) -> int:
        """MACs of the policy's own network on the last frame (0 for the fixed policies)."""
        return int(getattr(self.policy, "last_policy_macs", 0))

    @property
    def last_update_macs(self) -> int:
        """MACs of the policy's training step on the last frame: learning, not inference, so not a frame's cost."""
        return int(getattr(self.policy, "last_update_macs", 0))

    def policy_state(self) -> bytes | None:
        """The learned policy's serialised state (network, optimiser, statistics); None for fixed policies."""
        save = getattr(self.policy, "state", None)
        return save() if callable(save) else None

    def load_policy_state(self, state: bytes) -> None:
        load = getattr(self.policy, "load_state", None)
        if not callable(load):
            raise ValueError(f"policy {self.settings.block_policy!r} has no state to load: only rl_semseg learns")
        load(state)

    def prime(self, frames: Sequence[Tensor], clip_starts: int = 2) -> None:
        """Run ``frames`` (consecutive batches of one clip) from a new clip ``clip_starts`` times, then put the
        policy's state and the stage times back and start new clips. The process's one-time costs of sparse
        frames (the engine's first record and replay, the heap's growth to a sparse frame's working set, the
        policy's first updates) are paid here, not in the first clips a run times, and what follows runs as it
        would have without (a learned policy learns nothing from these frames)."""
        if not frames:
            return
        policy_state, stage_seconds = self.policy_state(), dict(self.stage_seconds)
        try:
            self.engine.prime_batch_sizes(frames[0])  # on CUDA, each block batch size once
            for _ in range(clip_starts):
                self.reset_temporal(seeds=[0] * frames[0].shape[0])  # a random policy's own draws stay untouched
                for batch in frames:
                    self(batch)
        finally:
            if policy_state is not None:
                self.load_policy_state(policy_state)
            self.stage_seconds = stage_seconds
            self.reset_temporal()

    def reset_temporal(self, images: Sequence[int] | None = None, seeds: Sequence[int] | None = None) -> None:
        """Start new clips: all of them (``images=None``) or those at the given batch positions; ``seeds`` (one per
        new clip) seed a random policy's draws per clip, so a clip's grids do not depend on what ran before it."""
        if seeds is not None and images is not None and len(seeds) != len(images):
            raise ValueError(f"reset_temporal got {len(seeds)} seeds for {len(images)} batch positions")
        if images is None:
            self.engine.reset()
            self.clip_state = ClipState(block_size=self.settings.block_size)
            self._fresh_images.clear()
        else:
            self._fresh_images.update(int(i) for i in images)
        self.policy.start_clips(images, seeds)

    def forward(self, frames: Tensor) -> Tensor:
        start = time.perf_counter()
        grid = self._grid(frames)
        chosen = time.perf_counter()
        output = self.engine(frames, grid)
        if not isinstance(output, Tensor):
            raise TypeError(f"BlockCopyModel needs a base model returning one tensor, got {type(output).__name__}")
        ran = time.perf_counter()
        self.policy.observe(frames, grid, output, self.clip_state)
        observed = time.perf_counter()
        self._advance(frames, grid, output)
        seconds = (chosen - start, ran - chosen + time.perf_counter() - observed, observed - ran)
        for stage, spent in zip(STAGES, seconds, strict=True):
            self.stage_seconds[stage] += spent
        return output

    def _grid(self, frames: Tensor) -> Tensor:
        expected = grid_size(frames, self.clip_state)
        grid = self.policy(frames, self.clip_state)
        if tuple(grid.shape) != expected or grid.dtype != torch.bool:
            raise ValueError(f"policy {type(self.policy).__name__} returned a {grid.dtype} grid of shape "
                             f"{tuple(grid.shape)}, expected bool {expected}")
        n = expected[0]
        grid = grid.detach().to("cpu").clone()
        if self.engine.state.empty:
            grid[:] = True
        for i in self._fresh_images:
            if i >= n:
                raise ValueError(f"reset_temporal got batch position {i}, the batch has {n} images")
            grid[i] = True
        self._fresh_images.clear()
        return grid

    def _advance(self, frames: Tensor, grid: Tensor, output: Tensor) -> None:
        state = self.clip_state
        layout = BlockLayout.from_grid(grid).on(frames.device)
        if state.frame_state is None or layout.all_executed:
            frame_state = frames.clone()
        else:
            frame_state = ops.transfer(state.frame_state, frames.clone(), layout.stale_idx, state.block_size)
        fractions = grid.flatten(1).float().mean(1)
        fraction = float(grid.float().mean())
        state.previous_output, state.previous_grid, state.frame_state = output, grid, frame_state
        self.last_grid, self.last_execution_fraction, self.last_execution_fractions = grid, fraction, fractions
