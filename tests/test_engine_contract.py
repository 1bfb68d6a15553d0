"""The engine's contract for any model a user wraps: outputs edited in place refused loudly, one clear error
(op and layer) for every way out of the supported set, shape-derived values that equal the dense frame's, and
the original release's per-block upsampling error absent."""

from __future__ import annotations

import weakref

import pytest
import torch
import torch.nn.functional as F
from test_engine_support import ReturnsFeatures, assert_close, random_grid
from torch import Tensor, nn

from blockcopy_core.engine import BlockSparseEngine, UnsupportedOpError, twins


def frames(seed: int, n: int = 1, h: int = 32, w: int = 48) -> Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def full(n: int = 1, gh: int = 2, gw: int = 3) -> Tensor:
    return torch.ones(n, gh, gw, dtype=torch.bool)


def copied_mask(grid: Tensor, block: int, like: Tensor) -> Tensor:
    return ~grid.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, None].expand_as(like)


# -- outputs the caller reads, and clones before editing ------------------------------------------------------------
HALF = torch.tensor([[[True, False, True], [False, True, False]]])
OTHER_HALF = ~HALF
EMPTY = torch.zeros(1, 2, 3, dtype=torch.bool)


@pytest.mark.parametrize("dense_when_full", [True, False])
@pytest.mark.parametrize("edited", ["dense", "sparse"])
def test_an_output_edited_in_place_is_refused_by_the_next_frame(dense_when_full, edited):
    """Dense and sparse outputs are the next frame's source of copied blocks: after y.mul_(0) the next sparse or
    empty-grid frame raises (never copies edited blocks), until reset() starts over."""
    torch.manual_seed(0)
    engine = BlockSparseEngine(ReturnsFeatures().eval(), 16, dense_when_full=dense_when_full)
    out = engine(frames(0), full())
    if edited == "sparse":
        out = engine(frames(1), HALF)
    out[1].mul_(0)
    for grid in (OTHER_HALF, EMPTY):
        with pytest.raises(RuntimeError, match="output 1 of the previous frame was modified in place"):
            engine(frames(2), grid)
    engine.reset()
    engine(frames(3), full())
    engine(frames(4), HALF)


def test_empty_grid_outputs_are_the_callers_own():
    """What an empty grid returns is a copy: editing it in place changes no later copied block, and no later
    frame refuses it."""
    torch.manual_seed(0)
    engine = BlockSparseEngine(ReturnsFeatures().eval(), 16)
    previous = None
    for t, grid in enumerate([full(), HALF, EMPTY, OTHER_HALF, EMPTY, HALF]):
        out = engine(frames(t), grid)
        if previous is not None:
            for y, kept in zip(out, previous):
                copied = copied_mask(grid, 16, y)
                assert torch.equal(y[copied], kept[copied])
        previous = [y.clone() for y in out]
        if not grid.any():
            for y in out:
                y.mul_(0)


def test_stored_maps_never_alias_outputs():
    """An output that is also a padded conv's input is not that site's stored map, so updating the maps in place
    on later frames never changes an output already returned."""
    engine = BlockSparseEngine(ReturnsFeatures().eval(), 16)
    out = engine(frames(0), full())
    returned = [y.clone() for y in out]
    maps = {t.untyped_storage().data_ptr() for t in engine.state.maps.values()}
    assert not maps & {y.untyped_storage().data_ptr() for y in out}
    engine(frames(1), random_grid(1, 2, 3, 0.5, 1))
    engine(frames(2), random_grid(1, 2, 3, 0.5, 2))
    assert all(torch.equal(a, b) for a, b in zip(out, returned))


# -- outputs recycled ---------------------------------------------------------------------------------------------
SPARSE_GRIDS = (random_grid(1, 2, 3, 0.5, seed) for seed in range(20))
GRIDS = [full(), *[grid for grid in SPARSE_GRIDS if 0 < grid.sum() < grid.numel()][:8]]  # one clip


def run_holding(hold: str) -> tuple[list[list[Tensor]], list[list[int]]]:
    """Copies of the outputs of ``GRIDS``'s frames and their data pointers, the caller holding every output
    (``all``), a view of each (``views``), nothing (``none``), or nothing after editing each one once it is no
    longer the kept one (``edit``)."""
    torch.manual_seed(0)
    engine = BlockSparseEngine(ReturnsFeatures().eval(), 16)
    held, copies, pointers, returned = [], [], [], []
    previous = None
    for t, grid in enumerate(GRIDS):
        out = engine(frames(t), grid)
        copies.append([y.clone() for y in out])
        pointers.append([y.data_ptr() for y in out])
        returned.append([weakref.ref(y) for y in out])
        if hold == "all":
            held.append((out, copies[-1]))
        elif hold == "views":
            held.append(([y[0] for y in out], [y[0].clone() for y in out]))
        elif hold == "edit" and previous is not None:
            for y in previous:
                y.mul_(0)
        previous = out if hold == "edit" else None
        del out
    assert all(torch.equal(a, b) for kept, seen in held for a, b in zip(kept, seen)), "a held output changed"
    if hold == "none":  # a recycled output's memory comes back as a new tensor, never as one returned before
        assert all(ref() is None for frame in returned[:-2] for ref in frame)
    return copies, pointers


def test_released_outputs_are_recycled_and_held_ones_never_change():
    """A sparse frame writes its outputs into those returned two frames before once nothing references them (it
    then moves only the blocks that changed since); outputs the caller still holds, or holds a view of, never
    change, an output edited after it was let go is not reused, and the outputs are the same in every case."""
    expected, held_pointers = run_holding("all")
    for hold in ("views", "none", "edit"):
        copies, pointers = run_holding(hold)
        assert all(torch.equal(a, b) for got, want in zip(copies, expected) for a, b in zip(got, want)), hold
        recycled = [pointers[t] == pointers[t - 2] for t in range(2, len(GRIDS))]
        assert all(recycled) if hold == "none" else not any(recycled), hold
    assert len({p for frame in held_pointers for p in frame}) == 2 * len(GRIDS)


# -- shape-derived values -----------------------------------------------------------------------------------------
class ShapeScaled(nn.Module):
    """Uses shapes as a model would: a scale from the map width, a pooling grid from the aspect ratio, resize
    sizes from another map's shape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x) * (x.shape[-1] / 48.0) + x.size(2) / 32.0
        deep = self.down(y)
        aspect = deep.shape[3] / deep.shape[2]
        pooled = F.adaptive_avg_pool2d(deep, (2, round(2 * aspect)))
        deep = deep + F.interpolate(pooled, size=deep.shape[2:], mode="bilinear", align_corners=False)
        return F.interpolate(deep, size=y.shape[2:], mode="bilinear", align_corners=False) + y * len(x)


def test_shape_derived_values_are_the_dense_frames():
    """Block batches answer shape queries as the full map they stand for, so these values never change."""
    model = ShapeScaled().eval()
    engine = BlockSparseEngine(model, 16, dense_when_full=False)
    for t in range(2):
        x = frames(t, n=2)
        assert_close(engine(x, full(n=2)), model(x).detach())
    x = frames(1, n=2)
    assert_close(engine(x, random_grid(2, 2, 3, 0.5, 5)), model(x).detach())


# -- refused models: one per way out ------------------------------------------------------------------------------
class Wrapped(nn.Module):
    """``layer`` (a module running ``op``) after a padded conv, so the op meets block-packed tensors."""

    def __init__(self, op):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.layer = op

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(self.conv(x))


class Op(nn.Module):
    def __init__(self, fn, **params: Tensor):
        super().__init__()
        self.fn = fn
        for name, value in params.items():
            self.register_parameter(name, nn.Parameter(value))

    def forward(self, y: Tensor) -> Tensor:
        return self.fn(self, y)


def coord_conv(_, y: Tensor) -> Tensor:
    xs = torch.linspace(-1, 1, y.shape[-1]).expand(y.shape[0], 1, y.shape[-2], -1)
    return torch.cat([y, xs], dim=1)


REFUSED = {
    "pad": (lambda _, y: F.pad(y, (1, 1, 1, 1))[..., 1:-1, 1:-1], "'pad'"),
    "flip": (lambda _, y: torch.flip(y, dims=(3,)), "'flip'"),
    "spatial mean": (lambda _, y: y * y.mean(dim=(2, 3), keepdim=True), "'mean'"),
    "flatten": (lambda _, y: y.flatten(2).unflatten(2, y.shape[2:]), "'flatten'"),
    "roll": (lambda _, y: torch.roll(y, 1, dims=3), "'roll'"),
    "shrinking conv": (lambda _, y: F.conv2d(y, torch.ones(4, 4, 3, 3)), "conv2d maps"),
    "coordconv": (coord_conv, "op 'cat' combines block-packed tensors with a"),
    "position embedding": (lambda m, y: y + m.pos, "op 'add' combines block-packed tensors"),
    "align_corners": (lambda _, y: F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True),
                      "interpolate"),
    "bicubic": (lambda _, y: F.interpolate(y, scale_factor=2, mode="bicubic"), "mode='bicubic'"),
    "non-integer resize": (lambda _, y: F.interpolate(y, scale_factor=1.5, mode="nearest"), "integer factor"),
    "max_pool indices": (lambda _, y: F.max_pool2d(y, 2, return_indices=True)[0], "max_pool2d_with_indices"),
    "avg_pool divisor": (lambda _, y: F.avg_pool2d(y, 3, 1, 1, count_include_pad=False), "count_include_pad"),
    "even same conv": (lambda m, y: F.conv2d(y, m.w, padding="same"), "padding='same'"),
    "global without resize": (lambda _, y: y + F.adaptive_avg_pool2d(y, 1), "mixes block-packed and whole-frame"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_op_names_op_and_layer(case):
    """Already on the first frame (a dense frame) each of these raises one error naming the op and the layer."""
    fn, message = REFUSED[case]
    params = {"pos": torch.randn(1, 4, 16, 16)} if case == "position embedding" else {}
    params |= {"w": torch.randn(4, 4, 2, 2)} if case == "even same conv" else {}
    engine = BlockSparseEngine(Wrapped(Op(fn, **params)).eval(), 8)
    with pytest.raises(UnsupportedOpError, match=message) as err:
        engine(frames(0, h=16, w=16), full(gh=2, gw=2))
    assert "[in layer 'layer' (Op)]" in str(err.value)


def test_training_batchnorm_names_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    with pytest.raises(UnsupportedOpError, match=r"batch_norm in training mode.*layer '1' \(BatchNorm2d\)"):
        BlockSparseEngine(model, 8)(frames(0, n=2, h=16, w=16), full(n=2, gh=2, gw=2))


class Branches(nn.Module):
    """Control flow on a whole-frame statistic (legal to compute, illegal to branch on): ``kind`` picks what
    the branch changes."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.stem(x)
        bright = bool(F.adaptive_avg_pool2d(x, 1).mean() > 0)
        if self.kind == "layer":
            return self.a(y) if bright else self.b(y)
        if self.kind == "data flow":
            z = torch.relu(y)
            return self.a(z if bright else y)
        return self.a(y * 2 if bright else y)  # "extra op"


@pytest.mark.parametrize(("kind", "message"), [
    ("layer", r"at op #\d+: it runs conv2d\(block tensor from op #\d+, parameter 'b.weight'"),
    ("data flow", r"at op #\d+: it runs conv2d\(block tensor from op #0, parameter 'a.weight'"),
    ("extra op", r"at op #\d+: it runs conv2d.* where the dense frame ran mul"),
])
def test_data_dependent_forward_is_refused(kind, message):
    """A sparse frame whose op sequence or data flow differs from the dense frame's: an error, never another
    layer's stored map."""
    engine = BlockSparseEngine(Branches(kind).eval(), 8)
    engine(frames(0, h=16, w=16).abs(), full(gh=2, gw=2))
    with pytest.raises(UnsupportedOpError, match=message):
        engine(-10 * frames(1, h=16, w=16).abs(), torch.tensor([[[True, False], [False, True]]]))


class Drifting(nn.Module):
    """Asks for another size after its first call (a size that is not the recorded one)."""

    def __init__(self, op: str):
        super().__init__()
        self.op, self.calls = op, 0
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        y = self.conv(x)
        if self.op == "interpolate":
            return F.interpolate(y, scale_factor=2 if self.calls == 1 else 4, mode="nearest")
        pooled = F.adaptive_avg_pool2d(y, 2 if self.calls == 1 else 3)
        return y + F.interpolate(pooled, size=(16, 16), mode="nearest")


@pytest.mark.parametrize("op", ["interpolate", "adaptive_avg_pool2d"])
def test_size_that_disagrees_with_the_recorded_one_is_refused(op):
    engine = BlockSparseEngine(Drifting(op).eval(), 8)
    engine(frames(0, h=16, w=16), full(gh=2, gw=2))
    with pytest.raises(UnsupportedOpError, match=rf"{op} asks for output size .* on this frame, .* the dense frame"):
        engine(frames(1, h=16, w=16), torch.tensor([[[True, False], [False, False]]]))


# -- the original release's decoder error -------------------------------------------------------------------------
class Decoder(nn.Module):
    """A strided encoder and a bilinear x2 decoder upsampling (where the original upsampled each block alone)."""

    def __init__(self):
        super().__init__()
        self.encode = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def features(self, x: Tensor) -> Tensor:
        return torch.relu(self.encode(x))

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.features(x), scale_factor=2, mode="bilinear", align_corners=False)


def test_per_block_upsampling_error_is_absent():
    """Upsampling each block on its own (the original release) is wrong at block borders; the engine's
    halo makes every executed block equal the dense model, borders included."""
    torch.manual_seed(0)
    model, block = Decoder().eval(), 16
    x, grid = frames(0), full()
    with torch.no_grad():
        dense, low = model(x), model.features(x)
    idx = torch.arange(grid.numel())
    low_blocks = twins.split(low, idx, block // 2)
    per_block = twins.combine(F.interpolate(low_blocks, scale_factor=2, mode="bilinear", align_corners=False), idx,
                              torch.empty_like(dense))
    border = torch.zeros_like(dense, dtype=torch.bool)
    for edge in range(block, dense.shape[-1], block):
        border[..., edge - 1 : edge + 1] = True
    for edge in range(block, dense.shape[-2], block):
        border[..., edge - 1 : edge + 1, :] = True
    assert (per_block - dense)[border].abs().max() > 1e-2 * dense.abs().max()  # the original's error
    assert torch.equal(per_block[~border], dense[~border])  # only there
    engine = BlockSparseEngine(model, block, dense_when_full=False)
    engine(frames(1), grid)
    assert_close(engine(x, grid), dense)  # every block through the block path
    assert_close(engine(x, random_grid(1, 2, 3, 0.5, 2)), dense)  # repeated frame, random grid
