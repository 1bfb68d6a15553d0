"""Replayed sparse frames (``engine/replay.py``): the same outputs as checked ones, and checked again wherever
a replay could go wrong."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blockcopy_core.engine import BlockSparseEngine, UnsupportedOpError


class Net(nn.Module):
    """Every kind of site: convs with and without a halo, in-place and per-pixel ops, pooling, a whole-frame op
    resized back onto the grid, a concatenation, a final resize into the output; counts its forwards."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(16, 5, 1)
        self.calls = 0

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        y = torch.relu_(self.stem(x))
        z = F.max_pool2d(y, 3, 1, 1) + self.body(y) * 0.5
        g = F.interpolate(F.adaptive_avg_pool2d(z, 2), size=z.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.head(torch.cat([z, F.interpolate(g, scale_factor=1, mode="nearest")], 1))
        return {"out": F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False), "features": z}


def clip(n: int = 2, frames: int = 6, h: int = 32, w: int = 48, block: int = 8) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(0)
    grids = [torch.ones(n, h // block, w // block, dtype=torch.bool)]
    grids += [torch.rand(n, h // block, w // block, generator=g) < 0.5 for _ in range(frames - 1)]
    return [(torch.randn(n, 3, h, w, generator=g), grid) for grid in grids]


def test_replayed_frames_equal_checked_ones_and_skip_the_model():
    torch.manual_seed(0)
    net = Net().eval()
    replayed, checked = BlockSparseEngine(net, 8), BlockSparseEngine(net, 8, replay=False)
    for i, (x, grid) in enumerate(clip()):
        calls = net.calls
        a = {k: v.clone() for k, v in replayed(x, grid).items()}
        assert net.calls == calls + (1 if i < 2 else 0)  # the dense and the first sparse frame run the model
        b = checked(x, grid)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_next_dense_frame_records_again():
    torch.manual_seed(0)
    net = Net().eval()
    engine = BlockSparseEngine(net, 8)
    frames = clip(frames=4)
    for x, grid in frames + frames:  # the second pass starts with a dense frame
        engine(x, grid)
    assert net.calls == 4


class Branches(nn.Module):
    """Branches on a whole-frame statistic, read into Python."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        bright = bool(F.adaptive_avg_pool2d(x, 1).mean() > 0)
        return self.a(x) if bright else self.b(x)


def test_a_value_read_into_python_keeps_every_frame_checked():
    engine = BlockSparseEngine(Branches().eval(), 8)
    grid = torch.tensor([[[True, False], [False, True]]])
    engine(torch.rand(1, 3, 16, 16), torch.ones(1, 2, 2, dtype=torch.bool))
    for _ in range(3):
        engine(torch.rand(1, 3, 16, 16), grid)
    assert engine.state.plan is None
    with pytest.raises(UnsupportedOpError, match="differs from the last dense frame"):
        engine(-10 * torch.rand(1, 3, 16, 16), grid)  # copied blocks keep their brightness: outweigh them


@pytest.mark.parametrize("change", ["parameter", "training"])
def test_a_changed_model_is_checked_and_recorded_again(change):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    engine, reference = BlockSparseEngine(net, 8), BlockSparseEngine(net, 8, replay=False)
    frames = clip(n=1, frames=5, h=16, w=24)
    for x, grid in frames[:3]:
        engine(x, grid), reference(x, grid)
    if change == "training":
        net.train()
        with pytest.raises(UnsupportedOpError, match=r"\[in layer '1' \(BatchNorm2d\)\]"):
            engine(*frames[3])
        return
    net[0].weight = nn.Parameter(torch.randn_like(net[0].weight))
    for x, grid in frames[3:]:
        assert torch.equal(engine(x, grid), reference(x, grid))


def test_the_record_holds_no_activation():
    """Only the model's parameters stay in a record: each replay brings its own activations (a record that kept
    the recorded frame's would hold a frame of activations for the whole clip)."""
    torch.manual_seed(0)
    net = Net().eval()
    engine = BlockSparseEngine(net, 8)
    for x, grid in clip(frames=2):
        engine(x, grid)
    held = [leaf for step in engine.state.plan.steps for leaf in step.leaves if isinstance(leaf, Tensor)]
    params = {id(p) for p in net.parameters()}
    assert held and all(id(t) in params for t in held)
