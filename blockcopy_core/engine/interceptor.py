"""The torch-function mode that runs an unchanged model on block-packed tensors.

Tensors carry a tag: ``BLOCK`` (a map packed as executed blocks, or on a dense frame the full map itself) or
``DENSE`` (a whole-frame result such as a pyramid-pooling grid). Per-pixel ops pass tags on; ops that look
across block borders are call sites, numbered by execution order, each with one stored map:

- conv / pool with a halo: padded blocks, the halo from executed neighbours' blocks and from the stored map
  for copied ones (``ops.block_pad``), then the op with padding 0. The blocks are kept by reference and the
  next frame writes into the stored map only those it does not execute again (carried blocks);
- bilinear resize of blocks: the same with a 1-pixel edge-clamped halo, then crop; nearest needs no halo;
- whole-frame ops (adaptive pooling): write the blocks into the stored map, run the op on the full map;
- a resize of a whole-frame tensor onto the block grid: resize to the full map, then split into blocks.

On a dense frame (every block executed) the model runs as it is at full resolution and each site only keeps
a reference to its input: that refreshes the state at no cost and records the trace sparse frames follow.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import ops
from .geometry import BlockLayout, Window
from .sites import (
    INTERPOLATE_DEFAULTS,
    INTERPOLATE_NAMES,
    WHOLE_FRAME_OPS,
    WINDOW_OPS,
    UnsupportedOpError,
    WindowSpec,
    bind,
    check_block_op,
    op_name,
)
from .state import SiteRecord, TemporalState

BLOCK, DENSE = "block", "dense"


def _tensors(obj: Any) -> Iterator[Tensor]:
    """The tensors in an op's arguments or result (cheap for the usual flat cases; pytree otherwise)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)) and all(not isinstance(o, (tuple, list, dict)) for o in obj):
        yield from (o for o in obj if isinstance(o, Tensor))
    elif isinstance(obj, dict) and all(not isinstance(o, (tuple, list, dict)) for o in obj.values()):
        yield from (o for o in obj.values() if isinstance(o, Tensor))
    else:
        yield from (o for o in tree_flatten(obj)[0] if isinstance(o, Tensor))


class BlockMode(TorchFunctionMode):
    """Intercepts one forward of the model; ``dense`` selects the dense-frame behaviour described above."""

    def __init__(self, state: TemporalState, layout: BlockLayout, dense: bool, model_input: Tensor):
        super().__init__()
        self.state, self.layout, self.dense = state, layout, dense
        previous = state.pending_layout
        self.carried = None if dense or previous is None else layout.carried_from(previous)
        self.model_input = model_input
        self.site = 0
        self._tags: dict[int, tuple[weakref.ref, str]] = {}

    # -- tags -------------------------------------------------------------------------------------------------
    def tag_of(self, t: Any) -> str | None:
        entry = self._tags.get(id(t)) if isinstance(t, Tensor) else None
        return entry[1] if entry is not None and entry[0]() is t else None

    def set_tag(self, out: Any, tag: str | None) -> Any:
        if tag is not None:
            for leaf in _tensors(out):
                self._tags[id(leaf)] = (weakref.ref(leaf), tag)
        return out

    # -- dispatch ---------------------------------------------------------------------------------------------
    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in WINDOW_OPS:
            return self._window_op(WINDOW_OPS[func], func, args, kwargs)
        if func is F.interpolate:
            return self._interpolate(func, args, kwargs)
        if func in WHOLE_FRAME_OPS:
            return self._whole_frame(func, args, kwargs)
        tags = {self.tag_of(t) for t in _tensors(args)} | {self.tag_of(t) for t in _tensors(kwargs)}
        tags.discard(None)
        out = func(*args, **kwargs)
        if not tags or next(_tensors(out), None) is None:
            return out
        if tags == {BLOCK, DENSE}:
            raise UnsupportedOpError(
                f"op {op_name(func)!r} mixes block-packed and whole-frame tensors; resize the whole-frame "
                "tensor to the block map first"
            )
        if BLOCK in tags:
            check_block_op(func, args, kwargs)
        return self.set_tag(out, tags.pop())

    # -- sites ------------------------------------------------------------------------------------------------
    def _next_site(self, name: str) -> tuple[int, SiteRecord | None]:
        site = self.site
        self.site += 1
        if self.dense:
            return site, None
        if site >= len(self.state.trace) or self.state.trace[site].name != name:
            seen = self.state.trace[site].name if site < len(self.state.trace) else "nothing"
            raise RuntimeError(
                f"the model's forward differs from the last dense frame's: op #{site} is {name}, was {seen}; "
                "the engine needs the same sequence of ops every frame"
            )
        return site, self.state.trace[site]

    def _record(self, record: SiteRecord) -> None:
        if self.dense:
            self.state.trace.append(record)

    def _store(self, site: int, x: Tensor) -> None:
        shares_input = x.untyped_storage().data_ptr() == self.model_input.untyped_storage().data_ptr()
        self.state.store(site, x, owned=not shares_input)  # the caller's frames (or a view) are copied

    def _bring_up_to_date(self, site: int) -> Tensor:
        """The site's stored map with last frame's blocks that are copied this frame written in."""
        stored = self.state.maps[site]
        pending = self.state.pending.pop(site, None)
        if pending is not None:
            ops.combine(pending, self.carried, stored)
        return stored

    def _padded_blocks(self, site: int, x: Tensor, halo: tuple[int, int, int, int], replicate: bool,
                       value: float) -> Tensor:
        """Blocks ``x`` with their halo: executed neighbours from ``x``, copied ones from the stored map."""
        stored = self._bring_up_to_date(site)
        top, bottom, left, right = halo
        shape = (x.shape[0], x.shape[1], x.shape[2] + top + bottom, x.shape[3] + left + right)
        buffer = self.state.padded_buffer(site, shape, stored)
        padded = ops.block_pad(x, self.layout.block_pos, stored, self.layout.exec_idx, halo, replicate, value,
                               buffer)
        self.state.keep_pending(site, x)
        return padded

    def _window_op(self, spec: WindowSpec, func: Callable, args: tuple, kwargs: dict) -> Tensor:
        site, _ = self._next_site(spec.name)
        p = bind(args, kwargs, spec.names, spec.defaults)
        x = p["input"]
        tag = self.tag_of(x)
        if tag != BLOCK:
            self._record(SiteRecord(spec.name))
            return self.set_tag(func(*args, **kwargs), tag)
        if x.dim() != 4:
            raise UnsupportedOpError(f"{spec.name} on a {x.dim()}-D tensor (blocks need N x C x H x W)")
        window = spec.window(p)
        halo = window.halo()
        if self.dense:
            out = func(*args, **kwargs)
            self._check_dense_window(spec.name, window, x, out)
            if any(halo):
                self._store(site, x)
            self._record(SiteRecord(spec.name))
            return self.set_tag(out, BLOCK)
        block = x.shape[-1]
        out_block = self._strided_block(spec.name, block, window.stride)
        xp = self._padded_blocks(site, x, halo, False, spec.pad_value) if any(halo) else x
        out = spec.unpadded(xp, p)
        if out.shape[-2:] != (out_block, out_block):
            out = out[..., :out_block, :out_block]
        return self.set_tag(out, BLOCK)

    def _strided_block(self, name: str, block: int, stride: tuple[int, int]) -> int:
        if stride[0] != stride[1] or block % stride[0]:
            raise ValueError(
                f"{name} with stride {stride} gets blocks of {block} px here: the block size must be divisible "
                "by the product of all strides before each layer"
            )
        return block // stride[0]

    def _check_dense_window(self, name: str, window: Window, x: Tensor, out: Tensor) -> None:
        in_hw = tuple(x.shape[-2:])
        want = tuple(n // s for n, s in zip(in_hw, window.stride))
        if tuple(out.shape[-2:]) != want or any(n % s for n, s in zip(in_hw, window.stride)):
            raise UnsupportedOpError(
                f"{name} maps {in_hw} to {tuple(out.shape[-2:])}; blocks need output = input / stride "
                "(pad so that the op keeps the map size up to its stride)"
            )
        block = self.layout.block_of_level(in_hw)
        if block is None:
            raise UnsupportedOpError(f"{name} runs on a {in_hw} map that the block grid does not cut evenly")
        self._strided_block(name, block, window.stride)

    def _interpolate(self, func: Callable, args: tuple, kwargs: dict) -> Tensor:
        site, record = self._next_site("interpolate")
        p = bind(args, kwargs, INTERPOLATE_NAMES, INTERPOLATE_DEFAULTS)
        x, mode = p["input"], p["mode"]
        tag = self.tag_of(x)
        if tag is None:
            self._record(SiteRecord("interpolate"))
            return func(*args, **kwargs)
        if tag == BLOCK:
            return self._interpolate_blocks(site, record, func, args, kwargs, p)
        if self.dense:  # a whole-frame tensor: back onto the block grid when it lands on a block level
            out = func(*args, **kwargs)
            out_hw = tuple(out.shape[-2:])
            on_grid = x.dim() == 4 and self.layout.block_of_level(out_hw) is not None
            self._record(SiteRecord("interpolate", out_hw=out_hw, out_is_block=on_grid))
            return self.set_tag(out, BLOCK if on_grid else DENSE)
        out = func(x, size=record.out_hw, mode=mode, align_corners=p["align_corners"], antialias=p["antialias"])
        if not record.out_is_block:
            return self.set_tag(out, DENSE)
        return self.set_tag(ops.split(out, self.layout.exec_idx, self.layout.block_of_level(record.out_hw)), BLOCK)

    def _interpolate_blocks(self, site: int, record: SiteRecord | None, func: Callable, args: tuple,
                            kwargs: dict, p: dict[str, Any]) -> Tensor:
        x, mode = p["input"], p["mode"]
        if mode not in ("bilinear", "nearest", "nearest-exact") or p["align_corners"] or p["antialias"]:
            raise UnsupportedOpError(
                f"interpolate(mode={mode!r}, align_corners={p['align_corners']}, antialias={p['antialias']}) "
                "cannot run on blocks; supported: bilinear (align_corners=False), nearest, nearest-exact"
            )
        if self.dense:
            out = func(*args, **kwargs)
            (h, w), (oh, ow) = x.shape[-2:], out.shape[-2:]
            if oh % h or ow % w or oh // h != ow // w:
                raise UnsupportedOpError(
                    f"interpolate from {(h, w)} to {(oh, ow)}: blocks need the same integer factor on both axes"
                )
            if mode == "bilinear":
                self._store(site, x)
            self._record(SiteRecord("interpolate", factor=oh // h))
            return self.set_tag(out, BLOCK)
        f, block = record.factor, x.shape[-1]
        if mode != "bilinear":
            return self.set_tag(F.interpolate(x, size=(block * f, block * f), mode=mode), BLOCK)
        xp = self._padded_blocks(site, x, (1, 1, 1, 1), True, 0.0)
        out = F.interpolate(xp, size=((block + 2) * f, (block + 2) * f), mode="bilinear", align_corners=False)
        return self.set_tag(out[..., f : f + block * f, f : f + block * f], BLOCK)

    def _whole_frame(self, func: Callable, args: tuple, kwargs: dict) -> Tensor:
        name = op_name(func)
        site, record = self._next_site(name)
        p = bind(args, kwargs, WHOLE_FRAME_OPS[func], {"return_indices": False})
        x = p["input"]
        tag = self.tag_of(x)
        if tag != BLOCK:
            self._record(SiteRecord(name))
            return self.set_tag(func(*args, **kwargs), tag)
        if p["return_indices"]:
            raise UnsupportedOpError(f"{name} with return_indices=True")
        if self.dense:
            out = func(*args, **kwargs)
            self._store(site, x)
            self._record(SiteRecord(name, out_hw=tuple(out.shape[-2:])))
            return self.set_tag(out, DENSE)
        stored = self._bring_up_to_date(site)
        ops.combine(x, self.layout.exec_idx, stored)
        return self.set_tag(func(stored, record.out_hw), DENSE)

    def check_complete(self) -> None:
        """A sparse forward must visit every site of the dense trace."""
        if not self.dense and self.site != len(self.state.trace):
            raise RuntimeError(
                f"the model's forward ran {self.site} block-border ops, the last dense frame {len(self.state.trace)}"
            )
