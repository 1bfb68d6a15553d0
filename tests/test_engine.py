"""Block-sparse engine on a small network it was not written for: invariants 1-4 and 6 of DESIGN.md,
batches of clips, and the errors for ops and block sizes it cannot handle."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_support import ReturnsFeatures, SmallNet, assert_close, random_grid, randomize_bn
from torch import Tensor, nn

from blockcopy_core.benchmarks import engine as engine_suite
from blockcopy_core.engine import BlockLayout, BlockSparseEngine, UnsupportedOpError, ops
from blockcopy_core.engine.engine import default_batch_step
from blockcopy_core.macs import count_macs


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(SmallNet())


def frames(n: int, h: int, w: int, seed: int) -> Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def dense(net: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return net(x)


def block_mask(grid: Tensor, block: int) -> Tensor:
    """N x 1 x H x W: True on executed blocks."""
    return grid.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, None]


clip_shapes = st.tuples(
    st.integers(1, 3),  # images (clips) in the batch
    st.integers(1, 4),  # grid rows
    st.integers(1, 4),  # grid cols
    st.sampled_from([8, 16, 24]),  # block size (total stride 8)
    st.integers(0, 10_000),  # seed
)


@settings(max_examples=12, deadline=None)
@given(clip_shapes)
def test_all_blocks_executed_equals_dense(net, shape):
    """Invariant 1, through the block path (dense_when_full=False), on frames that change."""
    n, gh, gw, block, seed = shape
    engine = BlockSparseEngine(net, block, dense_when_full=False)
    full = torch.ones(n, gh, gw, dtype=torch.bool)
    for t in range(3):
        x = frames(n, gh * block, gw * block, seed + t)
        assert_close(engine(x, full), dense(net, x))


def test_dense_frames_are_the_plain_model(net):
    """Invariant 1 on the default path: a full grid runs the plain model, bitwise."""
    engine = BlockSparseEngine(net, 16)
    full = torch.ones(2, 2, 3, dtype=torch.bool)
    for t in range(2):
        x = frames(2, 32, 48, t)
        assert torch.equal(engine(x, full), dense(net, x))


@settings(max_examples=12, deadline=None)
@given(clip_shapes, st.floats(0.0, 1.0))
def test_identical_frame_any_grid_gives_previous_output(net, shape, p):
    """Invariant 2: state equals what the repeated frame produces, so any grid reproduces the output. The
    state is built by a block-path frame after a different frame, so the stored maps only become current
    through the blocks carried over from frame to frame."""
    n, gh, gw, block, seed = shape
    engine = BlockSparseEngine(net, block, dense_when_full=False)
    full = torch.ones(n, gh, gw, dtype=torch.bool)
    engine(frames(n, gh * block, gw * block, seed + 100), full)
    x = frames(n, gh * block, gw * block, seed)
    previous = engine(x, full)
    for t in range(3):
        out = engine(x, random_grid(n, gh, gw, p, seed + t))
        assert_close(out, previous)


@settings(max_examples=12, deadline=None)
@given(clip_shapes)
def test_copied_blocks_are_bitwise_previous_output(net, shape):
    """Invariant 4, and invariant 3 (empty grid: bitwise previous output, no MACs)."""
    n, gh, gw, block, seed = shape
    engine = BlockSparseEngine(net, block)
    previous = engine(frames(n, gh * block, gw * block, seed), torch.ones(n, gh, gw, dtype=torch.bool))
    for t in range(1, 4):
        grid = random_grid(n, gh, gw, 0.5, seed + t)
        out = engine(frames(n, gh * block, gw * block, seed + t), grid)
        copied = ~block_mask(grid, block).expand_as(out)
        assert torch.equal(out[copied], previous[copied])
        previous = out
    empty = torch.zeros(n, gh, gw, dtype=torch.bool)
    out, macs = count_macs(engine, frames(n, gh * block, gw * block, seed + 9), empty)
    assert torch.equal(out, previous) and macs == 0


def test_block_padding_matters(net, monkeypatch):
    """Zero padding at block borders (the published code's shortcut) must violate invariant 1."""

    def zero_halo(blocks, block_pos, stale, idx, halo, replicate, value, out=None):
        top, bottom, left, right = halo
        return F.pad(blocks, (left, right, top, bottom), value=0.0)

    monkeypatch.setattr(ops, "block_pad", zero_halo)
    engine = BlockSparseEngine(net, 16, dense_when_full=False)
    full = torch.ones(1, 2, 2, dtype=torch.bool)
    x = frames(1, 32, 32, 0)
    engine(x, full)
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_close(engine(x, full), dense(net, x))


class ReadsItsResize(nn.Module):
    """Returns its final resize and a map computed from it: the resize must reach the second output too."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        up = F.interpolate(self.head(image), size=image.shape[2:], mode="bilinear", align_corners=False)
        return up, torch.relu(up)


@pytest.mark.parametrize("channels_last", [False, True])
def test_final_resize_is_written_straight_into_the_output(net, monkeypatch, channels_last):
    """A resize whose result the model returns as it is goes straight into the output (ops.upsample_into, no block
    batch); one whose result an op reads is computed as blocks. Either way a repeated frame gives the dense
    output on any grid (invariant 2)."""
    calls = []
    upsample_into = ops.upsample_into
    monkeypatch.setattr(ops, "upsample_into", lambda *a: calls.append(a[1]) or upsample_into(*a))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    reads = ReadsItsResize().eval().to(memory_format=fmt)
    try:
        for model, resizes in ((net.to(memory_format=fmt), [4]), (reads, [])):
            calls.clear()
            engine, x = BlockSparseEngine(model, 16), frames(2, 32, 48, 5).contiguous(memory_format=fmt)
            engine(x, torch.ones(2, 2, 3, dtype=torch.bool))
            out, want = engine(x, random_grid(2, 2, 3, 0.5, 3)), dense(model, x)
            assert calls == resizes
            assert_close(*(torch.cat(o) if isinstance(o, tuple) else o for o in (out, want)))
    finally:
        net.to(memory_format=torch.contiguous_format)  # the module's shared network, as other tests expect it


def test_batch_of_clips_equals_clips_run_alone(net):
    """One grid per image: a batch of two clips gives what each clip gives alone."""
    together = BlockSparseEngine(net, 16)
    alone = [BlockSparseEngine(net, 16) for _ in range(2)]
    grid = torch.ones(2, 2, 3, dtype=torch.bool)
    for t in range(4):
        x = frames(2, 32, 48, t)
        out = together(x, grid)
        for i, engine in enumerate(alone):
            assert_close(out[i : i + 1], engine(x[i : i + 1], grid[i : i + 1]))
        grid = random_grid(2, 2, 3, 0.5, t)


@settings(max_examples=12, deadline=None)
@given(clip_shapes, st.integers(2, 7))
def test_padded_block_batches_change_nothing(net, shape, step):
    """Padding each frame's block batch to a multiple of ``batch_step`` (as on CUDA) gives the outputs the engine
    gives without it, copied blocks bitwise: padding rows are computed and never written."""
    n, gh, gw, block, seed = shape
    padded, plain = BlockSparseEngine(net, block, batch_step=step), BlockSparseEngine(net, block)
    full = torch.ones(n, gh, gw, dtype=torch.bool)
    x = frames(n, gh * block, gw * block, seed)
    previous = padded(x, full)
    plain(x, full)
    for t in range(1, 4):
        grid = random_grid(n, gh, gw, 0.5, seed + t)
        x = frames(n, gh * block, gw * block, seed + t)
        out = padded(x, grid)
        assert_close(out, plain(x, grid))
        copied = ~block_mask(grid, block).expand_as(out)
        assert torch.equal(out[copied], previous[copied])
        previous = out


def test_layout_pads_the_block_batch_to_its_step():
    grid = torch.tensor([[[True, False, True], [False, False, True]]])  # blocks 0, 2, 5 of 6 executed
    layout = BlockLayout.from_grid(grid, batch_step=4)
    assert layout.exec_idx.tolist() == [0, 2, 5, 0] and layout.write_idx.tolist() == [0, 2, 5, -1]
    assert layout.num_exec == 3 and layout.block_pos.tolist() == [0, -1, 1, -1, -1, 2]
    assert BlockLayout.from_grid(grid, batch_step=8).exec_idx.numel() == 6  # never more than the whole grid
    assert BlockLayout.from_grid(torch.zeros_like(grid), batch_step=4).exec_idx.numel() == 0
    # the next frame copies blocks 0, 2 and 5: their stored values are carried, the padding row is not
    assert BlockLayout.from_grid(~grid).carried_from(layout).tolist() == [0, 2, 5, -1]
    with pytest.raises(ValueError, match="batch_step"):
        BlockLayout.from_grid(grid, batch_step=0)
    # on CUDA the batch takes at most 16 sizes per grid; on a CPU it is not padded
    assert default_batch_step(256, torch.device("cuda")) == 16 and default_batch_step(100, torch.device("cuda")) == 7
    assert default_batch_step(256, torch.device("cpu")) == 1


def test_priming_runs_each_padded_batch_size_once_on_a_state_of_its_own(net, monkeypatch):
    sizes = []
    split = ops.split
    monkeypatch.setattr(ops, "split", lambda dense, idx, block: sizes.append(idx.numel()) or split(dense, idx, block))
    x = frames(2, 32, 48, 0)  # 12 blocks of 16 px
    engine = BlockSparseEngine(net, 16, batch_step=5)
    engine.prime_batch_sizes(x)
    assert sorted(set(sizes)) == [5, 10, 12] and engine.state.empty  # 11 executed blocks pad to all 12
    sizes.clear()
    BlockSparseEngine(net, 16).prime_batch_sizes(x)  # a CPU pads nothing, so there is nothing to prime
    assert sizes == []


def test_reset_requires_full_first_frame(net):
    engine = BlockSparseEngine(net, 16)
    x = frames(1, 32, 32, 0)
    engine(x, torch.ones(1, 2, 2, dtype=torch.bool))
    engine.reset()
    with pytest.raises(ValueError, match="first frame"):
        engine(x, torch.zeros(1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="block size 16 does not divide"):
        engine(frames(1, 40, 32, 0), torch.ones(1, 2, 2, dtype=torch.bool))


class Unsupported(nn.Module):
    """A padded conv followed by an op that mixes pixels across the map."""

    def __init__(self, op: str):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.op == "pad":
            return F.pad(y, (1, 1, 1, 1))[..., 1:-1, 1:-1]
        if self.op == "flip":
            return torch.flip(y, dims=(3,))
        if self.op == "valid_conv":
            return F.conv2d(y, torch.ones(4, 4, 3, 3))
        return y * y.mean(dim=(2, 3), keepdim=True)


@pytest.mark.parametrize(("op", "name"), [("pad", "pad"), ("flip", "flip"), ("valid_conv", "conv2d"),
                                          ("mean", "mean")])
def test_unsupported_op_is_named(op, name):
    """Invariant 6: an op that cannot run on blocks raises an error naming it (already on the first frame)."""
    engine = BlockSparseEngine(Unsupported(op).eval(), 8)
    with pytest.raises(UnsupportedOpError, match=name):
        engine(frames(1, 16, 16, 0), torch.ones(1, 2, 2, dtype=torch.bool))


def test_block_size_must_divide_strides(net):
    engine = BlockSparseEngine(net, 12)  # stride 8 inside: 12 px blocks are 1.5 px deep
    with pytest.raises(ValueError, match="divisible"):
        engine(frames(1, 24, 24, 0), torch.ones(1, 2, 2, dtype=torch.bool))


def test_training_mode_batchnorm_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    with pytest.raises(UnsupportedOpError, match="batch_norm"):
        BlockSparseEngine(model, 8)(frames(2, 16, 16, 0), torch.ones(2, 2, 2, dtype=torch.bool))


def test_returned_outputs_never_change():
    """Outputs already returned stay as they were, also when they are a layer's stored state."""
    engine = BlockSparseEngine(ReturnsFeatures().eval(), 8)
    first = engine(frames(1, 16, 16, 0), torch.ones(1, 2, 2, dtype=torch.bool))
    kept = [t.clone() for t in first]
    engine(frames(1, 16, 16, 1), random_grid(1, 2, 2, 0.5, 0) | torch.tensor([[[True, False], [False, False]]]))
    engine(frames(1, 16, 16, 2), torch.tensor([[[False, True], [True, True]]]))
    assert all(torch.equal(a, b) for a, b in zip(first, kept))


def test_in_place_change_of_stored_input_is_refused():
    class Mutates(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: Tensor) -> Tensor:
            y = torch.relu(x)
            out = self.conv(y)
            y.mul_(2.0)
            return out + y

    with pytest.raises(RuntimeError, match="modified in place"):
        BlockSparseEngine(Mutates().eval(), 8)(frames(1, 16, 16, 0), torch.ones(1, 2, 2, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision(net, dtype):
    """Half / bfloat16 models run on blocks: copies stay bitwise, the block path stays close to dense."""
    model = SmallNet().eval()
    model.load_state_dict(net.state_dict())
    model = model.to(dtype)
    engine = BlockSparseEngine(model, 16, dense_when_full=False)
    full = torch.ones(1, 2, 3, dtype=torch.bool)
    x = frames(1, 32, 48, 0).to(dtype)
    previous = engine(x, full)
    x2 = frames(1, 32, 48, 1).to(dtype)
    out = engine(x2, full)
    reference = dense(model.float(), x2.float())
    model.to(dtype)
    assert out.dtype == dtype and (out.float() - reference).abs().max() <= 0.05 * reference.abs().max()
    grid = torch.tensor([[[True, False, True], [False, True, False]]])
    copied = ~block_mask(grid, 16).expand_as(out)
    previous, out = out, engine(frames(1, 32, 48, 2).to(dtype), grid)
    assert torch.equal(out[copied], previous[copied])


def test_engine_benchmark_runs_end_to_end_in_half_precision(capsys, monkeypatch):
    monkeypatch.setattr(engine_suite, "default_batch_step", lambda num_blocks, device: 3)  # pad as a GPU would
    engine_suite.main(["--configs", "64x128@32", "--frames", "1", "--threads", "1", "--half", "--ops", "2"])
    out = capsys.readouterr().out
    assert re.search(r"new number of executed blocks every frame \(about 50%\): \d\.\d{3} s unpadded, "
                     r"\d\.\d{3} s padded to multiples of 3 blocks", out)
    assert "## resnet18 64x128, block 32, 1 threads, torch.bfloat16" in out
    assert re.search(r"speedup / GMACs ratio \d+\.\d\d", out)
    assert len(re.findall(r"^\| aten::\w+ \| \d+\.\d\d \| \d+\.\d\d \| [+-]\d+\.\d\d \|$", out, re.M)) == 4


def test_gpu_profile_counts_kernels_only():
    """On a GPU an operator's device time repeats its kernels': only kernel events are summed, so the rows add
    up to the time the GPU was busy; on a CPU every operator's self time counts."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    events = [SimpleNamespace(key="aten::conv2d", device_type=DeviceType.CPU, self_cpu_time_total=900.0,
                              self_device_time_total=4000.0),
              SimpleNamespace(key="sm90_conv_kernel", device_type=DeviceType.CUDA, self_cpu_time_total=0.0,
                              self_device_time_total=4000.0)]
    assert engine_suite.ms_per_frame(events, on_gpu=True, frames=2) == {"sm90_conv_kernel": 2.0}
    assert engine_suite.ms_per_frame(events, on_gpu=False, frames=2) == {"aten::conv2d": 0.45, "sm90_conv_kernel": 0.0}
