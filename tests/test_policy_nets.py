"""The learned policy's networks (block_policy_net paper / compact): cost by grid, learning, saved state."""

import io

import pytest
import torch

from blockcopy_core import BlockCopySettings
from blockcopy_core.benchmarks import policy as policy_suite
from blockcopy_core.policies import POLICY_NETS, ClipState, LearnedPolicy
from blockcopy_core.policies.learned import _cell_mean_differences, _cell_means, _channel_log_softmax

CLASSES = 19


def policy_macs(net: str, block: int, grid: tuple[int, int]) -> int:
    policy = LearnedPolicy(BlockCopySettings(block_policy_net=net, block_size=block))
    h, w = grid[0] * block, grid[1] * block
    state = ClipState(block_size=block, previous_output=torch.randn(1, CLASSES, h, w),
                      previous_grid=torch.ones(1, *grid, dtype=torch.bool), frame_state=torch.zeros(1, 3, h, w))
    with torch.no_grad():
        assert policy(torch.randn(1, 3, h, w), state).shape == (1, *grid)
    return policy.last_policy_macs


@pytest.mark.parametrize("net", POLICY_NETS)
def test_cost_follows_the_grid_not_the_pixels(net):
    # the same 4x8 grid of 32 px blocks (128x256) and of 64 px blocks (256x512): the same input, the same MACs
    assert policy_macs(net, 32, (4, 8)) == policy_macs(net, 64, (4, 8)) > 0
    assert policy_macs(net, 32, (8, 16)) == 4 * policy_macs(net, 32, (4, 8))


def test_compact_network_costs_a_fiftieth_of_the_papers():
    compact, paper = policy_macs("compact", 64, (8, 16)), policy_macs("paper", 64, (8, 16))
    assert compact < paper / 50
    assert paper == pytest.approx(7.53e9, rel=0.01)  # the release's network at an 8x16 grid


def moving_left_half(steps: int, net: str) -> LearnedPolicy:
    """A policy trained where the output changes every frame in the left half of the frame and never in the
    right half (the frames change likewise), with a learning rate that makes the test short."""
    policy = LearnedPolicy(BlockCopySettings(block_policy_net=net, block_size=32, block_optim_lr=1e-3,
                                             block_train_interval=2))
    generator = torch.Generator().manual_seed(0)
    h, w = 64, 128
    still_frame, still_output = torch.randn(1, 3, h, w, generator=generator), torch.randn(1, CLASSES, h, w)
    state = ClipState(block_size=32, previous_output=10 * still_output, previous_grid=torch.ones(1, 2, 4).bool(),
                      frame_state=still_frame.clone())
    with torch.no_grad():
        for _ in range(steps):
            frames, output = still_frame.clone(), 10 * still_output.clone()
            frames[..., : w // 2] = torch.randn(1, 3, h, w // 2, generator=generator)
            output[..., : w // 2] = 10 * torch.randn(1, CLASSES, h, w // 2, generator=generator)
            grid = policy(frames, state)
            policy.observe(frames, grid, output, state)
            state.frame_state = torch.where(grid.repeat_interleave(32, 1).repeat_interleave(32, 2)[:, None],
                                            frames, state.frame_state)
            state.previous_output, state.previous_grid = output, grid
    return policy


@pytest.mark.parametrize("net", POLICY_NETS)
def test_it_learns_to_execute_where_the_output_changes(net):
    policy = moving_left_half(20, net)
    probs = policy._probs[0]
    assert policy.updates == 10
    assert probs[:, :2].mean() > probs[:, 2:].mean() + 0.3
    assert policy.prob_executed_sum / policy.statistic_frames > policy.prob_copied_sum / policy.statistic_frames


@pytest.mark.parametrize("net", POLICY_NETS)
def test_state_saves_and_loads(net):
    trained = moving_left_half(6, net)
    fresh = LearnedPolicy(BlockCopySettings(block_policy_net=net, block_size=32))
    fresh.load_state(trained.state())
    for name, tensor in trained.net.state_dict().items():
        assert torch.equal(tensor, fresh.net.state_dict()[name]), name
    assert (fresh.updates, fresh.frames_seen, fresh.running_cost) == (3, 6, trained.running_cost)
    assert torch.equal(fresh.generator.get_state(), trained.generator.get_state())
    other = next(name for name in POLICY_NETS if name != net)
    with pytest.raises(ValueError, match=f"holds the '{net}' policy network.*--block-policy-net {net}"):
        LearnedPolicy(BlockCopySettings(block_policy_net=other, block_size=32)).load_state(trained.state())


def test_state_of_an_older_network_shape_is_refused_by_name():
    """A compact policy file from before its change channel (26 input channels) is refused with the shapes."""
    policy = LearnedPolicy(BlockCopySettings(block_policy_net="compact", block_size=32))
    blob = policy.state()
    state = torch.load(io.BytesIO(blob), weights_only=True)
    state["net"]["stem.0.weight"] = state["net"]["stem.0.weight"][:, :-1]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with pytest.raises(ValueError, match=r"stem.0.weight: \(16, 26, 3, 3\), this version's \(16, 27, 3, 3\)"):
        policy.load_state(buffer.getvalue())


def test_policy_suite_times_each_network_on_the_jobs_model(capsys):
    """The policy benchmark runs end to end on a tiny configuration: one table row per network, stages summing to
    the total, the block movements a part of the network stage, and the policy network's MACs."""
    policy_suite.main(["--configs", "128x256@64", "--warmup-clips", "1", "--clips", "1", "--clip-length", "3"])
    printed = capsys.readouterr().out
    for net in POLICY_NETS:
        assert f"{net}: policy network" in printed
        row = next(line for line in printed.splitlines() if line.startswith(f"| {net} |"))
        cells = [float(cell.split()[0].rstrip("x")) for cell in row.split("|")[2:-1]]
        policy, network, movements_ms, update, total, _, _, _, _ = cells
        assert total == pytest.approx(policy + network + update, abs=2e-3) and network > 0
        assert 0 < movements_ms / 1000 < network and row.endswith(" MB |")  # the last column: memory faulted in


def test_compact_input_shows_changes_that_cell_means_cancel():
    """Two pixels swapped inside one input cell leave the frame's cell means as they were; the compact network's
    change channel (the mean absolute difference from the frame state over each cell) shows that cell alone."""
    policy = LearnedPolicy(BlockCopySettings(block_policy_net="compact", block_size=32))
    frame_state = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    frames = frame_state.clone()
    frames[..., 5, 9], frames[..., 6, 10] = frame_state[..., 6, 10], frame_state[..., 5, 9]  # in cell (1, 2)
    state = ClipState(block_size=32, previous_output=torch.randn(1, CLASSES, 64, 128),
                      previous_grid=torch.ones(1, 2, 4, dtype=torch.bool), frame_state=frame_state)
    features = policy._features(frames, state, (2, 4))
    assert features.shape == (1, 3 + 3 + CLASSES + 1 + 1, 16, 32)
    torch.testing.assert_close(features[:, :3], features[:, 3:6])  # the cell means: no change
    change = features[0, -1]
    expected = (frames - frame_state).abs()[0, :, 4:8, 8:12].mean()
    assert change[1, 2] == pytest.approx(float(expected)) and float(expected) > 0
    change[1, 2] = 0
    assert not change.any()


@pytest.mark.parametrize("channels_last", [False, True])
def test_layout_aware_reductions_equal_torchs(channels_last):
    # the compact network's input cells and the reward's log-softmax, computed in the map's own memory layout
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 19, 48, 96, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=fmt)
    for size in [(6, 12), (48, 96), (1, 1), (5, 7)]:  # (5, 7) does not divide the map: adaptive pooling's cells
        torch.testing.assert_close(_cell_means(x, size), torch.nn.functional.adaptive_avg_pool2d(x, size))
    log_probs = _channel_log_softmax(x)
    torch.testing.assert_close(log_probs, torch.log_softmax(x, 1))
    assert log_probs.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("channels_last", [False, True])
def test_change_in_bands_equals_the_whole_frames(channels_last):
    # the change channel's cell means, made a band of cell rows at a time, are bitwise those of the whole frame
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(2, 3, 48, 96, generator=g).contiguous(memory_format=fmt) for _ in range(2))
    cpu = torch.device("cpu")
    for size in [(6, 12), (12, 24), (5, 7)]:  # (5, 7) does not divide the map: no bands
        whole = _cell_means((a - b).abs(), size)
        for band_bytes in (1, 3 * 8 * 96 * 4 * 2 * 2, 2**30):  # a band per cell row, two cell rows, one band
            assert torch.equal(_cell_mean_differences(a, b, size, cpu, band_bytes), whole)
