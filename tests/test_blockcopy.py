"""BlockCopyModel wrapper and the fixed policies (all / none / random)."""

from __future__ import annotations

import pytest
import torch
from test_engine_support import SmallNet, assert_close, randomize_bn
from torch import Tensor, nn

from blockcopy_core import BlockCopyModel
from blockcopy_core.macs import count_macs
from blockcopy_core.policies import BlockPolicy, ClipState, grid_size, register_policy


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(SmallNet())


def frames(seed: int, n: int = 2) -> Tensor:
    return torch.randn(n, 3, 32, 64, generator=torch.Generator().manual_seed(seed))


def wrap(net: nn.Module, policy: str) -> BlockCopyModel:
    return BlockCopyModel(net, {"block_policy": policy, "block_size": 16})


def test_all_policy_is_the_dense_model(net):
    model = wrap(net, "all")
    for t in range(3):
        x = frames(t)
        with torch.no_grad():
            assert torch.equal(model(x), net(x))
        assert model.last_execution_fraction == 1.0
        assert model.last_grid.shape == (2, 2, 4) and bool(model.last_grid.all())


def test_none_policy_runs_only_first_frames(net):
    model = wrap(net, "none")
    first = model(frames(0))
    assert model.last_execution_fraction == 1.0
    for t in range(1, 3):
        assert torch.equal(model(frames(t)), first)
        assert model.last_execution_fraction == 0.0
    model.reset_temporal()
    x = frames(5)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert model.last_execution_fraction == 1.0


def test_random_policy_and_per_clip_reset(net):
    model = wrap(net, "random")
    model(frames(0))
    fractions = []
    for t in range(1, 6):
        model(frames(t))
        fractions.append(model.last_execution_fraction)
    assert 0.2 < sum(fractions) / len(fractions) < 0.8
    model.reset_temporal([1])  # clip 1 starts anew: all its blocks run, clip 0 follows the policy
    x = frames(9)
    out = model(x)
    assert bool(model.last_grid[1].all())
    assert model.last_execution_fractions[1] == 1.0
    with torch.no_grad():
        assert_close(out[1:], net(x[1:]))
    assert model.clip_state.previous_output is out


class Checkerboard(BlockPolicy):
    def __init__(self):
        super().__init__()
        self.frames_seen = 0

    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        n, gh, gw = grid_size(frames, state)
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        grid = (yy + xx + self.frames_seen) % 2 == 0
        self.frames_seen += 1
        return grid.expand(n, gh, gw)


def test_registered_policy_gets_the_clip_state(net):
    register_policy("checkerboard", lambda settings: Checkerboard())
    model = wrap(net, "checkerboard")
    model(frames(0))
    model(frames(1))
    assert model.last_execution_fraction == 0.5
    assert bool(model.last_grid[0, 0, 1]) and not bool(model.last_grid[0, 0, 0])
    assert model.clip_state.frame_state.shape == (2, 3, 32, 64)


def test_settings_are_checked(net):
    with pytest.raises(ValueError, match="static"):
        wrap(net, "static")
    with pytest.raises(ValueError, match="unknown block_policy 'nope'"):
        wrap(net, "nope")
    with pytest.raises(ValueError, match="block_sise"):
        BlockCopyModel(net, {"block_policy": "all", "block_sise": 16})
    with pytest.raises(ValueError, match="block size 16 does not divide"):
        wrap(net, "all")(torch.randn(1, 3, 40, 64))


def test_bad_policy_grid_is_refused(net):
    register_policy("wrong_shape", lambda settings: WrongShape())
    model = wrap(net, "wrong_shape")
    with pytest.raises(ValueError, match="WrongShape returned"):
        model(frames(0))


class WrongShape(BlockPolicy):
    def forward(self, frames: Tensor, state: ClipState) -> Tensor:
        return torch.ones(1, 1, 1, dtype=torch.bool)


def test_macs_per_policy(net):
    """MACs from the shapes that run: `all` costs the static model, `none` nothing after the first frame."""
    _, static = count_macs(net, frames(0))
    all_model, none_model = wrap(net, "all"), wrap(net, "none")
    for t in range(3):
        _, all_macs = count_macs(all_model, frames(t))
        _, none_macs = count_macs(none_model, frames(t))
        assert all_macs == static
        assert none_macs == (static if t == 0 else 0)
