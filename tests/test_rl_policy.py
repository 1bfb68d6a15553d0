"""The learned policy rl_semseg on small synthetic clips: target tracking, learning signal, determinism, resume."""

import numpy as np
import pytest
import torch

from blockcopy_core import BlockCopyModel, BlockCopySettings
from blockcopy_core.data import build_clips, iter_frames
from blockcopy_core.data.transforms import normalize
from blockcopy_core.models import build_swiftnet, fold_batchnorm
from blockcopy_core.policies import POLICY_NETS, ClipState, LearnedPolicy
from blockcopy_core.policies.learned import NOT_LEARNING_AFTER

BLOCK = 32
SIZE = (64, 128)


@pytest.fixture(scope="module")
def network():
    """An untrained SwiftNet made confident (sharp softmax), as a trained one is: the information-gain reward
    compares softmax outputs, and a near-uniform softmax barely changes anywhere."""
    torch.manual_seed(0)
    model = fold_batchnorm(build_swiftnet("resnet18")).eval()
    with torch.no_grad():
        model.logits.conv.weight.mul_(30)
    return model


def make_model(network, target=0.5, **extra):
    settings = {"block_policy": "rl_semseg", "block_size": BLOCK, "block_target": target, **extra}
    return BlockCopyModel(network, settings)


def clips(count, length, first=0, seed=0):
    return build_clips("synthetic", clip_length=length, num_clips=count, seed=seed, height=SIZE[0], width=SIZE[1],
                       first_clip=first)


@torch.no_grad()
def run(model, clip_list):
    """Per frame: (clip index, frame index, grid, output, frame label)."""
    records = []
    for c, clip in enumerate(clip_list):
        model.reset_temporal()
        for t, frame in enumerate(iter_frames(clip)):
            output = model(normalize(frame.image)[None])
            records.append((c, t, model.last_grid[0].clone(), output, frame.label))
    return records


@pytest.mark.parametrize("target", [0.3, 0.5])
def test_execution_fraction_tracks_the_target(network, target):
    model = make_model(network, target)
    run(model, clips(24, 10))  # warm-up
    after = run(model, clips(8, 10, first=1000))
    fractions = [grid.float().mean().item() for _, t, grid, _, _ in after if t > 0]
    assert abs(np.mean(fractions) - target) <= 0.1


def test_running_cost_counts_every_frame_first_ones_included(network):
    """As in the release, the complexity reward's running execution fraction folds in each clip's first frame,
    which executes every block, so at a target the sparse frames execute less than the target."""
    model = make_model(network)
    fractions = [(t, grid.float().mean().item()) for _, t, grid, _, _ in run(model, clips(2, 4))]

    def running(values):
        cost = values[0]
        for value in values[1:]:
            cost = 0.9 * cost + 0.1 * value
        return cost

    sparse = [f for t, f in fractions if t > 0]
    assert min(sparse) < 1 and [f for t, f in fractions if t == 0] == [1.0, 1.0]
    assert model.policy.running_cost == pytest.approx(running([f for _, f in fractions]))
    assert model.policy.running_cost != pytest.approx(running(sparse))


def test_executed_blocks_cover_the_moving_pixels(network):
    model = make_model(network, 0.5)
    static_clips = [c for c in clips(60, 10, seed=3) if not c.synthetic.panning]
    run(model, static_clips[:24])  # warm-up
    moving_exec = moving_copied = area_exec = area_copied = 0
    previous = None
    for _, t, grid, _, label in run(model, static_clips[24:]):
        if t > 0:
            cells = grid.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1).numpy()
            moved = label != previous  # ground-truth motion: the generator's labels changed here
            moving_exec += moved[cells].sum()
            moving_copied += moved[~cells].sum()
            area_exec += cells.sum()
            area_copied += (~cells).sum()
        previous = label
    density_exec = moving_exec / max(area_exec, 1)
    density_copied = moving_copied / max(area_copied, 1)
    assert density_exec > 1.5 * density_copied


def test_same_seed_same_grids_and_outputs(network):
    first, second = run(make_model(network), clips(3, 6)), run(make_model(network), clips(3, 6))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


@pytest.mark.parametrize("net", POLICY_NETS)
def test_split_run_with_policy_file_equals_one_long_run(network, tmp_path, net):
    # 9-frame clips: 8 learning frames each, two updates of 4, so no update straddles the split
    clip_list = clips(4, 9)
    long_model = make_model(network, block_policy_net=net)
    long_run = run(long_model, clip_list)

    first = make_model(network, block_policy_net=net)
    first_part = run(first, clip_list[:2])
    path = tmp_path / "policy.pt"
    path.write_bytes(first.policy_state())
    second = make_model(network, block_policy_net=net)
    second.load_policy_state(path.read_bytes())
    second_part = run(second, clip_list[2:])

    for a, b in zip(long_run, first_part + second_part, strict=True):
        assert torch.equal(a[2], b[2])
    for key in ("frames_seen", "updates", "running_cost", "prob_executed_sum", "statistic_frames"):
        assert getattr(long_model.policy, key) == pytest.approx(getattr(second.policy, key)), key


@pytest.mark.parametrize("policy", ["rl_semseg", "random"])
def test_priming_changes_nothing_that_follows(network, policy):
    # the job primes a BlockCopy model on a few frames before timing it: the grids and outputs after it, and
    # the learned policy's state, are those of a model never primed
    clip_list = clips(3, 6)
    plain, primed = make_model(network, block_policy=policy), make_model(network, block_policy=policy)
    stage_seconds = dict(primed.stage_seconds)
    primed.prime([normalize(frame.image)[None] for frame in iter_frames(clips(1, 3, first=50)[0])])
    assert primed.stage_seconds == stage_seconds
    for a, b in zip(run(plain, clip_list), run(primed, clip_list), strict=True):
        assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])
    if policy == "rl_semseg":
        for key in ("frames_seen", "updates", "running_cost", "prob_executed_sum", "statistic_frames"):
            assert getattr(plain.policy, key) == getattr(primed.policy, key), key
        for name, value in plain.policy.net.state_dict().items():
            assert torch.equal(value, primed.policy.net.state_dict()[name]), name


def test_segmentation_network_is_never_changed(network):
    before = {k: v.clone() for k, v in network.state_dict().items()}
    run(make_model(network), clips(2, 9))
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert all(p.grad is None for p in network.parameters())


def test_nan_in_the_output_is_a_clear_error(network):
    model = make_model(network)
    frames = [normalize(f.image)[None] for f in iter_frames(clips(1, 3)[0])]
    with torch.no_grad():
        model(frames[0])
        bad = frames[1].clone()
        bad[..., :8, :8] = float("nan")
        with pytest.raises(FloatingPointError, match="NaN"):
            model(bad)
            model(frames[2])


def test_a_policy_that_does_not_learn_is_reported(caplog):
    # frozen: executed and copied blocks keep the same probabilities
    policy = LearnedPolicy(BlockCopySettings(block_optim_lr=0.0))
    generator = torch.Generator().manual_seed(0)
    state = ClipState(block_size=32, previous_output=torch.randn(1, 19, 32, 64, generator=generator),
                      previous_grid=torch.ones(1, 1, 2, dtype=torch.bool), frame_state=torch.zeros(1, 3, 32, 64))
    with torch.no_grad(), caplog.at_level("WARNING", logger="blockcopy"):
        for _ in range(NOT_LEARNING_AFTER + 5):
            frames = torch.randn(1, 3, 32, 64, generator=generator)
            grid = policy(frames, state)
            output = torch.randn(1, 19, 32, 64, generator=generator)
            policy.observe(frames, grid, output, state)
            state.previous_output, state.previous_grid = output, grid
    assert any("not learning" in record.message for record in caplog.records)


@pytest.mark.parametrize(("net", "block"), [("compact", 16), ("compact", 48), ("compact", 12), ("paper", 32),
                                            ("paper", 96), ("paper", 48)])
def test_kept_resized_frame_state_equals_resizing_the_frame_state(monkeypatch, net, block):
    """The frame state's resize that observe keeps is bitwise the resize of ``state.frame_state`` on every frame,
    across a restart of one batch position; blocks the network's pixels per block do not divide keep nothing."""
    torch.manual_seed(0)
    tiny = torch.nn.Conv2d(3, BlockCopySettings().block_num_classes, 3, padding=1).eval()
    model = BlockCopyModel(tiny, {"block_policy": "rl_semseg", "block_size": block, "block_policy_net": net})
    policy, state = model.policy, model.clip_state
    features = policy._features
    used, mixed = [], []

    def checked(frames, clip_state, grid_hw):
        size = policy._size(grid_hw)
        direct = policy._resized(clip_state.frame_state, size)
        kept, policy._state_resized = policy._state_resized, None
        expected = features(frames, clip_state, grid_hw)  # with nothing kept: resizes the frame state
        policy._state_resized = kept
        result = features(frames, clip_state, grid_hw)
        used.append(kept is not None and policy._resized_state(clip_state, size) is kept[2])
        mixed.append(bool(clip_state.previous_grid.any() and not clip_state.previous_grid.all()))
        assert torch.equal(result[:, 3:6], direct) and torch.equal(result, expected)
        return result

    monkeypatch.setattr(policy, "_features", checked)
    first, second, third = ([normalize(f.image) for f in iter_frames(clip)]
                            for clip in build_clips("synthetic", clip_length=8, num_clips=3, height=96, width=192))
    with torch.no_grad():
        for t in range(8):
            if t == 4:
                model.reset_temporal(images=[1])
            model(torch.stack([first[t], (second if t < 4 else third)[t % 4]]))
            assert state is model.clip_state
    assert len(used) == 7 and sum(mixed) >= 3
    assert all(used) if block % policy.net.pixels_per_block == 0 else not any(used)
