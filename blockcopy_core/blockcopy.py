"""BlockCopyModel: a segmentation model made block-sparse and temporally stateful by an execution policy.

Per frame batch (one frame of each of N clips side by side) the policy picks the blocks to execute, the
engine runs them through the unchanged base model and copies the rest from the previous output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .engine import BlockLayout, BlockSparseEngine, ops
from .policies import BlockPolicy, ClipState, build_policy

# The original argparser's BlockCopy options (without the leading "--" and with "_"), with its defaults.
DEFAULT_SETTINGS: dict[str, Any] = {
    "block_policy": "rl_semseg",
    "block_size": 128,
    "block_target": 0.5,
    "block_num_classes": 19,
    "block_train_interval": 4,
    "block_complexity_weight": 5.0,
    "block_optim_lr": 1e-4,
    "block_optim_wd": 1e-3,
    "block_optim_momentum": 0.0,
    "block_cost_momentum": 0.9,
    "block_policy_verbose": False,
}


def resolve_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` over the defaults; unknown keys are an error (a typo would otherwise be ignored)."""
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown BlockCopy settings {unknown}; known: {sorted(DEFAULT_SETTINGS)}")
    resolved = {**DEFAULT_SETTINGS, **settings}
    if not isinstance(resolved["block_size"], int) or resolved["block_size"] <= 0:
        raise ValueError(f"block_size must be a positive int, got {resolved['block_size']!r}")
    return resolved


class BlockCopyModel(nn.Module):
    """Wraps ``base_model`` (frames N x 3 x H x W -> logits N x K x H x W) with a BlockCopy policy.

    Call it on consecutive frame batches of the same clips; ``reset_temporal()`` starts new clips (all of them,
    or only the listed batch positions). The first frame of a clip executes every block whatever the policy.
    After each call ``last_grid`` (bool N x gh x gw) and ``last_execution_fraction`` (executed share of all
    blocks of the batch; per image in ``last_execution_fractions``) describe what ran.
    """

    def __init__(self, base_model: nn.Module, settings: Mapping[str, Any]):
        super().__init__()
        self.settings = resolve_settings(settings)
        self.base_model = base_model
        self.policy: BlockPolicy = build_policy(self.settings)
        parameter = next(base_model.parameters(), None)
        if parameter is not None:  # a learned policy lives beside the model (in float32 whatever the model's dtype)
            self.policy.to(parameter.device)
        self.engine = BlockSparseEngine(base_model, self.settings["block_size"])
        self.clip_state = ClipState(block_size=self.settings["block_size"])
        self._fresh_images: set[int] = set()
        self.last_grid: Tensor | None = None
        self.last_execution_fraction: float | None = None
        self.last_execution_fractions: Tensor | None = None

    @property
    def last_policy_macs(self) -> int:
        """MACs of the policy's own network on the last frame (0 for the fixed policies)."""
        return int(getattr(self.policy, "last_policy_macs", 0))

    @property
    def last_policy_stats(self) -> dict[str, float]:
        """A learning policy's last-frame statistics: mean reward and mean execution probability of the blocks
        it executed and of those it copied (empty for the fixed policies)."""
        names = {"reward": "last_reward", "prob_executed": "last_prob_executed", "prob_copied": "last_prob_copied"}
        return {key: float(getattr(self.policy, attr)) for key, attr in names.items() if hasattr(self.policy, attr)}

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
            raise ValueError(f"policy {self.settings['block_policy']!r} has no state to load: only rl_semseg learns")
        load(state)

    def reset_temporal(self, images: Sequence[int] | None = None) -> None:
        """Start new clips: all of them (``images=None``) or those at the given batch positions."""
        if images is None:
            self.engine.reset()
            self.clip_state = ClipState(block_size=self.settings["block_size"])
            self._fresh_images.clear()
        else:
            self._fresh_images.update(int(i) for i in images)

    def forward(self, frames: Tensor) -> Tensor:
        grid = self._grid(frames)
        output = self.engine(frames, grid)
        if not isinstance(output, Tensor):
            raise TypeError(f"BlockCopyModel needs a base model returning one tensor, got {type(output).__name__}")
        self.policy.observe(frames, grid, output, self.clip_state)
        self._advance(frames, grid, output)
        return output

    def _grid(self, frames: Tensor) -> Tensor:
        n, gh, gw = frames.shape[0], *self.engine.grid_shape(frames)
        grid = self.policy(frames, self.clip_state)
        if tuple(grid.shape) != (n, gh, gw) or grid.dtype != torch.bool:
            raise ValueError(f"policy {type(self.policy).__name__} returned a {grid.dtype} grid of shape "
                             f"{tuple(grid.shape)}, expected bool {(n, gh, gw)}")
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
        momentum = self.settings["block_cost_momentum"]
        ema = fraction if state.execution_ema is None else momentum * state.execution_ema + (1 - momentum) * fraction
        state.grid_hw = tuple(grid.shape[1:])
        state.frame_index += 1
        state.previous_output, state.previous_grid, state.frame_state = output, grid, frame_state
        state.execution_ema = ema
        self.last_grid, self.last_execution_fraction, self.last_execution_fractions = grid, fraction, fractions
