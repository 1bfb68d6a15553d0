"""The learned execution policy ``rl_semseg``: a small CNN trained online with REINFORCE.

Per frame it looks at the frame, the frame state (the pixels each block last executed on), the previous output
and the previous grid, and samples one Bernoulli decision per block. Its reward is the information gain of the
executed blocks (how much the segmentation output changed there) plus a complexity term that steers the running
execution fraction to ``block_target``; copied blocks get the negated reward, so REINFORCE lowers their
probability exactly when executing would have paid off. The segmentation network is never trained or changed.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..settings import BlockCopySettings
from .base import BlockPolicy, ClipState, grid_size

log = logging.getLogger("blockcopy")
T = TypeVar("T")
POLICY_SEED = 0  # of the initial network and the sampling: the same in every run
NOT_LEARNING_AFTER = 300  # frames after which indistinct probabilities for executed / copied blocks warn
NOT_LEARNING_MARGIN = 0.1  # a frozen, untrained network already shows ~0.03-0.05 (selection of likelier blocks)


class BasicBlock(nn.Module):
    """CIFAR-style residual block: two 3x3 convs with BatchNorm, a 1x1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class PolicyNet(nn.Module):
    """ResNet-8 (one block per stage, widths 32/64/128, strides 1/2/2) and three stride-2 convs to one logit
    per block: an input at 1/4 * 128 / block_size of the frame comes out at one value per block."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.stages = nn.Sequential(BasicBlock(32, 32, 1), BasicBlock(32, 64, 2), BasicBlock(64, 128, 2))
        self.head = nn.Sequential(
            nn.Conv2d(128, 128, 3, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 128, 3, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 1, 3, 2, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))[:, 0]


class LearnedPolicy(BlockPolicy):
    """``rl_semseg``: samples the grid from the policy network and learns from each frame's reward."""

    def __init__(self, settings: BlockCopySettings | None = None):
        super().__init__()
        settings = settings or BlockCopySettings()
        self.num_classes = settings.block_num_classes
        self.target = settings.block_target
        self.train_interval = settings.block_train_interval
        self.complexity_weight = settings.block_complexity_weight
        self.cost_momentum = settings.block_cost_momentum
        self.verbose = settings.block_policy_verbose
        with torch.random.fork_rng(devices=[]):  # every run starts from the same initial network
            torch.manual_seed(POLICY_SEED)
            # channels_last: oneDNN (and cuDNN) run these small-channel convolutions ~20% faster in that layout
            self.net = PolicyNet(3 + 3 + self.num_classes + 1).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.RMSprop(self.net.parameters(), lr=settings.block_optim_lr,
                                             weight_decay=settings.block_optim_wd,
                                             momentum=settings.block_optim_momentum)
        self.generator = torch.Generator().manual_seed(POLICY_SEED)  # Bernoulli sampling
        self.running_cost: float | None = None  # running execution fraction, the complexity reward's input
        self.frames_seen = 0
        self.updates = 0
        self.prob_executed_sum = 0.0  # sums over training frames, for the not-learning check
        self.prob_copied_sum = 0.0
        self.statistic_frames = 0
        self._pending: list[Tensor] = []  # per-frame losses since the last update
        self._pending_shapes: list[tuple[int, ...]] = []  # their grids' shapes (which fix the network inputs')
        self._macs: dict[tuple, int] = {}  # MACs by input shapes: counted once (a counter slows every op down)
        self._log_prob: Tensor | None = None
        self._probs: Tensor | None = None
        self.last_policy_macs = 0  # forward pass of the policy network, this frame
        self.last_update_macs = 0  # optimisation step (not inference cost), this frame
        self.last_reward: float = math.nan
        self.last_prob_executed: float = math.nan
        self.last_prob_copied: float = math.nan
        self._warned = False

    # ------------------------------------------------------------------------------------------ acting
    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        n, gh, gw = grid_size(frames, state)
        self._log_prob = self._probs = None
        if state.previous_output is None or state.frame_state is None or state.previous_grid is None:
            self.last_policy_macs = 0
            return torch.ones((n, gh, gw), dtype=torch.bool)  # the first frame executes everything
        features = self._features(frames, state, (gh, gw))
        with torch.enable_grad():
            logits, self.last_policy_macs = self._counted(("forward", tuple(features.shape)), self.net, features)
        if logits.shape[1:] != (gh, gw):
            raise ValueError(f"policy network gives a {tuple(logits.shape[1:])} grid for a {(gh, gw)} block grid")
        if not torch.isfinite(logits).all():
            raise FloatingPointError("rl_semseg policy produced NaN/inf logits: the policy network diverged")
        probs = torch.sigmoid(logits.detach())
        grid = torch.bernoulli(probs.cpu(), generator=self.generator).bool().to(probs.device)
        self._probs = probs
        with torch.enable_grad():  # the log-probability of the sampled grid, kept for REINFORCE
            self._log_prob = torch.where(grid, F.logsigmoid(logits), F.logsigmoid(-logits))
        return grid.cpu()

    def _features(self, frames: Tensor, state: ClipState, grid_hw: tuple[int, int]) -> Tensor:
        """Frame, frame state, previous softmax output - 0.5 and previous grid - 0.5, at 1/4 * 128 / block_size."""
        size = (grid_hw[0] * 32, grid_hw[1] * 32)
        device = next(self.net.parameters()).device

        def resized(x: Tensor) -> Tensor:
            return F.interpolate(x.detach().float().to(device), size=size, mode="nearest")

        # Nearest resizing picks pixels, so softmax after it equals softmax before it, on fewer pixels.
        previous = torch.softmax(resized(state.previous_output), dim=1)
        grid = state.previous_grid.detach().float()[:, None]
        features = torch.cat([resized(frames), resized(state.frame_state), previous - 0.5, resized(grid) - 0.5], dim=1)
        return features.contiguous(memory_format=torch.channels_last)

    def _counted(self, key: tuple, fn: Callable[..., T], *args: Any) -> tuple[T, int]:
        """``fn(*args)`` and its MACs, counted with FlopCounterMode the first time ``key`` (the shapes) is seen."""
        if key in self._macs:
            return fn(*args), self._macs[key]
        counter = FlopCounterMode(display=False)
        with counter:
            result = fn(*args)
        self._macs[key] = counter.get_total_flops() // 2
        return result, self._macs[key]

    # ---------------------------------------------------------------------------------------- learning
    def observe(self, frames: Tensor, grid: Tensor, output: Tensor, state: ClipState) -> None:
        self.last_update_macs = 0
        if self._log_prob is None or state.previous_output is None:
            return
        grid = grid.to(self._log_prob.device)
        fraction = float(grid.float().mean())
        m = self.cost_momentum
        self.running_cost = fraction if self.running_cost is None else m * self.running_cost + (1 - m) * fraction
        reward = self.reward(output, state.previous_output, grid)
        if not torch.isfinite(reward).all():
            raise FloatingPointError("rl_semseg reward is NaN/inf: the segmentation output is not finite")
        with torch.enable_grad():
            self._pending.append(-(self._log_prob * reward).mean())
        self._pending_shapes.append(tuple(self._log_prob.shape))
        self._record(grid, reward)
        if len(self._pending) >= self.train_interval:
            with torch.enable_grad():
                _, self.last_update_macs = self._counted(("update", *self._pending_shapes), self._update)
            self._pending, self._pending_shapes = [], []
            self.updates += 1
        self._log_prob = None

    def _update(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        torch.stack(self._pending).mean().backward()
        self.optimizer.step()

    def reward(self, output: Tensor, previous_output: Tensor, grid: Tensor) -> Tensor:
        """Per block: information gain plus the complexity reward; negated where the block was copied."""
        with torch.no_grad():
            gh, gw = grid.shape[1:]
            current = _quarter(output.detach().float())
            previous = _quarter(previous_output.detach().float())
            log_p, log_q = F.log_softmax(current, 1), F.log_softmax(previous, 1)
            kl = (log_p.exp() * (log_p - log_q)).mean(1, keepdim=True)  # mean over classes
            gain = F.adaptive_max_pool2d(kl, (gh, gw))[:, 0].to(grid.device)
            excess = self.running_cost - self.target
            complexity = self.complexity_weight * -(excess * abs(excess))
            reward = gain + complexity
            return torch.where(grid, reward, -reward)

    def _record(self, grid: Tensor, reward: Tensor) -> None:
        probs = self._probs.detach()
        executed, copied = probs[grid], probs[~grid]
        self.last_reward = float(torch.where(grid, reward, -reward).mean())
        self.last_prob_executed = float(executed.mean()) if executed.numel() else math.nan
        self.last_prob_copied = float(copied.mean()) if copied.numel() else math.nan
        self.frames_seen += 1
        if executed.numel() and copied.numel():
            self.prob_executed_sum += self.last_prob_executed
            self.prob_copied_sum += self.last_prob_copied
            self.statistic_frames += 1
        if self.verbose:
            log.info("policy: executed %.3f, running cost %.3f, reward %.4f, p(exec | executed) %.3f, "
                     "p(exec | copied) %.3f, updates %d", float(grid.float().mean()), self.running_cost,
                     self.last_reward, self.last_prob_executed, self.last_prob_copied, self.updates)
        if self.frames_seen >= NOT_LEARNING_AFTER and not self._warned and self.statistic_frames:
            gap = (self.prob_executed_sum - self.prob_copied_sum) / self.statistic_frames
            if gap < NOT_LEARNING_MARGIN:
                log.warning("rl_semseg policy is not learning: after %d frames executed and copied blocks have "
                            "nearly the same mean probability (gap %.4f)", self.frames_seen, gap)
            self._warned = True

    # -------------------------------------------------------------------------------------- persisting
    def state(self) -> bytes:
        """Network, optimiser, running cost and statistics, serialised (for files and Ray's object store)."""
        buffer = io.BytesIO()
        torch.save({
            "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "running_cost": self.running_cost, "frames_seen": self.frames_seen, "updates": self.updates,
            "prob_executed_sum": self.prob_executed_sum, "prob_copied_sum": self.prob_copied_sum,
            "statistic_frames": self.statistic_frames, "generator": self.generator.get_state(),
        }, buffer)
        return buffer.getvalue()

    def load_state(self, blob: bytes) -> None:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        for key in ("running_cost", "frames_seen", "updates", "prob_executed_sum", "prob_copied_sum",
                    "statistic_frames"):
            setattr(self, key, state[key])
        self._pending, self._pending_shapes = [], []


def _quarter(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=0.25, mode="bilinear", align_corners=False)
