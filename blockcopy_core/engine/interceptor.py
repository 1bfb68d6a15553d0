"""The torch-function mode that runs an unchanged model on block-packed tensors.

Tensors carry a tag: ``BLOCK`` (a map packed as executed blocks, or on a dense frame the full map itself) or
``DENSE`` (a whole-frame result such as a pyramid-pooling grid). Per-pixel ops pass tags on; ops that look
across block borders are call sites, numbered by execution order, each with one stored map:

- conv / pool with a halo: padded blocks, the halo from executed neighbours' blocks and from the stored map
  for copied ones (``ops.block_pad``), then the op with padding 0. The blocks are kept by reference and the
  next frame writes into the stored map only those it does not execute again (carried blocks), and of those
  only the frame as wide as the halo: the inner pixels of a copied block are never read;
- bilinear resize of blocks: the same with a 1-pixel edge-clamped halo, then crop; nearest needs no halo. A
  resize the model returns as it is, read by no op, gives a placeholder: the engine resizes into the output;
- whole-frame ops (adaptive pooling): write the blocks into the stored map, run the op on the full map;
- a resize of a whole-frame tensor onto the block grid: resize to the full map, then split into blocks.

On a dense frame (every block executed) the model runs as it is at full resolution and each site only keeps
a reference to its input: that refreshes the state at no cost and records the trace sparse frames follow.
On a sparse frame a block batch answers shape queries as the full map it stands for, and every op must repeat
the dense frame's signature (``trace``); errors name the layer the op ran in. The first sparse frame after a
dense one also records its ops for the clip's later sparse frames to replay (``replay``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import ops
from .geometry import BlockLayout, Window
from .replay import METADATA, Recorder, Run
from .site_runs import block_resize_run, dense_resize_run, plain, whole_frame_run, window_run
from .sites import (
    INTERPOLATE_DEFAULTS,
    INTERPOLATE_NAMES,
    PASS_THROUGH,
    SELF_TAGGED,
    WHOLE_FRAME_OPS,
    WINDOW_OPS,
    UnsupportedOpError,
    WindowSpec,
    bind,
    check_block_op,
    check_constants,
    op_name,
    requested_pool_size,
    requested_size,
)
from .state import SiteRecord, TemporalState
from .trace import Signature, Source, arg_tensors, layer_of, model_tensor_names

BLOCK, DENSE = "block", "dense"
# Shape queries answered with the full map's shape on sparse frames (see ``BlockMode._full_shape``).
SHAPE_QUERIES = {"shape", "size", "__len__", "numel"}
# Errors raised by the engine's own checks: re-raised with the layer the op ran in.
LOCATED = (UnsupportedOpError, ValueError)


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
    """Intercepts one forward of ``model``; ``dense`` selects the dense-frame behaviour described above."""

    def __init__(self, state: TemporalState, layout: BlockLayout, dense: bool, model_input: Tensor,
                 model: nn.Module):
        super().__init__()
        self.state, self.layout, self.dense = state, layout, dense
        previous = state.pending_layout
        self.carried = None if dense or previous is None else layout.carried_from(previous)
        self.model_input, self.model = model_input, model
        if dense:  # a walk over every module: once per dense frame, the clip's sparse frames reuse it
            state.params = model_tensor_names(model)
        self._params_fresh = dense
        self.site = 0
        self.op = -1  # index of the op running now, among the ops with a tensor result
        self._tags: dict[int, tuple[weakref.ref, str, tuple[int, int]]] = {}
        # placeholders of resizes left for the engine to write into the output: id -> (placeholder, padded, factor)
        self._deferred: dict[int, tuple[Tensor, Tensor, int]] = {}
        self.recorder: Recorder | None = None  # set on a sparse frame whose ops are to be recorded for replay

    # -- tags -------------------------------------------------------------------------------------------------
    def tag_of(self, t: Any) -> str | None:
        entry = self._tags.get(id(t))  # the weak reference tells a live tensor from one that reused a dead id
        return entry[1] if entry is not None and entry[0]() is t else None

    def set_tag(self, out: Any, tag: str | None, producer: tuple[int, int] | None = None) -> Any:
        """Tag the tensors of ``out``; their producer is the running op (output i) unless given."""
        if tag is None:
            return out
        if isinstance(out, Tensor):
            self._tags[id(out)] = (weakref.ref(out), tag, producer or (self.op, 0))
            return out
        for i, leaf in enumerate(_tensors(out)):
            self._tags[id(leaf)] = (weakref.ref(leaf), tag, producer or (self.op, i))
        return out

    def _source(self, t: Tensor) -> Source:
        entry = self._tags.get(id(t))
        if entry is not None and entry[0]() is t:
            return (entry[1], *entry[2])
        name = self._param_name(t)
        return ("param", name) if name is not None else ("const", tuple(t.shape), t.dtype)

    def _param_name(self, t: Tensor) -> str | None:
        """The name of ``t`` among the model's parameters and buffers, or None; the list the dense frame made is
        made again once when ``t`` is not in it (``model.to()`` within a clip replaces buffers)."""
        entry = self.state.params.get(id(t))
        if (entry is None or entry[1] is not t) and not self._params_fresh:
            self.state.params, self._params_fresh = model_tensor_names(self.model), True
            entry = self.state.params.get(id(t))
        return entry[0] if entry is not None and entry[1] is t else None

    # -- dispatch ---------------------------------------------------------------------------------------------
    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = op_name(func)
        if name in SHAPE_QUERIES and not self.dense and self.tag_of(args[0]) == BLOCK:
            return self._full_shape(name, args, kwargs)
        try:
            if func in WINDOW_OPS:
                self._follow(func, name, arg_tensors(args, kwargs))
                return self._window_op(WINDOW_OPS[func], func, args, kwargs)
            if func is F.interpolate:
                self._follow(func, name, arg_tensors(args, kwargs))
                return self._interpolate(func, args, kwargs)
            if func in WHOLE_FRAME_OPS:
                self._follow(func, name, arg_tensors(args, kwargs))
                return self._whole_frame(func, args, kwargs)
            return self._per_pixel(func, name, args, kwargs)
        except LOCATED as exc:
            if type(exc) not in LOCATED or " [in " in str(exc):
                raise
            raise type(exc)(f"{exc} [in {layer_of(self.model)}]") from None

    def _per_pixel(self, func: Callable, name: str, args: tuple, kwargs: dict) -> Any:
        inputs = arg_tensors(args, kwargs)
        input_tags = [self.tag_of(t) for t in inputs]
        tags = {self.tag_of(args[0])} if name in SELF_TAGGED and args else set(input_tags)
        tags.discard(None)
        out = func(*args, **kwargs)
        if not isinstance(out, Tensor) and next(_tensors(out), None) is None:
            if self.recorder is not None and name not in METADATA:
                self.recorder.refuse()  # a value read into Python may steer the forward elsewhere next frame
            return out
        self._follow(func, name, inputs)
        if self.recorder is not None:
            self.recorder.record(plain(func), args, kwargs, out, self.tag_of)
        if not tags:
            return out
        if tags == {BLOCK, DENSE}:
            raise UnsupportedOpError(
                f"op {name!r} mixes block-packed and whole-frame tensors; resize the whole-frame "
                "tensor to the block map first"
            )
        if BLOCK in tags:
            check_block_op(name, args, kwargs)
            constants = [t for t, tag in zip(inputs, input_tags) if tag is None]
            if constants:
                check_constants(name, args, kwargs, constants)
        producer = self._tags[id(args[0])][2] if name in PASS_THROUGH and self.tag_of(args[0]) else None
        return self.set_tag(out, tags.pop(), producer)

    def _full_shape(self, name: str, args: tuple, kwargs: dict) -> Any:
        """A block batch B x C x b x b answers shape queries as the N x C x H x W map it stands for, so values a
        model computes from shapes (resize sizes, pooling grids, scales) are those of the dense frame."""
        x = args[0]
        gh, gw = self.layout.grid_hw
        full = torch.Size((self.layout.grid.shape[0], x.shape[1], gh * x.shape[2], gw * x.shape[3]))
        if name == "shape":
            return full
        if name == "__len__":
            return full[0]
        if name == "numel":
            return full.numel()
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        return full if dim is None else full[dim]

    # -- the op sequence --------------------------------------------------------------------------------------
    def _follow(self, func: Callable, name: str, inputs: tuple[Tensor, ...]) -> None:
        """Count the op (its tensor arguments ``inputs``); a dense frame records its signature, a sparse frame
        must repeat it."""
        self.op += 1
        sources = tuple(map(self._source, inputs))
        if self.dense:
            self.state.ops.append(Signature(func, name, sources))
            return
        recorded = self.state.ops[self.op] if self.op < len(self.state.ops) else None
        if recorded is None or recorded.sources != sources or recorded.name != name or recorded.func != func:
            raise UnsupportedOpError(
                f"the model's forward differs from the last dense frame's at op #{self.op}: it runs "
                f"{Signature(func, name, sources).describe()} where the dense frame ran "
                f"{recorded.describe() if recorded else 'nothing'}; "
                "the engine needs the same ops on the same data flow every frame (control flow that depends on "
                "the data is not supported)"
            )

    def check_complete(self) -> None:
        """A sparse forward must run every op of the dense frame."""
        if not self.dense and self.op + 1 != len(self.state.ops):
            raise UnsupportedOpError(
                f"the model's forward ran {self.op + 1} ops, the last dense frame {len(self.state.ops)}; the "
                "engine needs the same ops every frame (control flow that depends on the data is not supported)"
            )

    # -- sites ------------------------------------------------------------------------------------------------
    def _next_site(self) -> tuple[int, SiteRecord | None]:
        site = self.site
        self.site += 1
        return site, None if self.dense else self.state.trace[site]

    def _record(self, record: SiteRecord) -> None:
        if self.dense:
            self.state.trace.append(record)

    def _store(self, site: int, x: Tensor) -> None:
        shares_input = x.untyped_storage().data_ptr() == self.model_input.untyped_storage().data_ptr()
        self.state.store(site, x, owned=not shares_input)  # the caller's frames (or a view) are copied

    def _bring_up_to_date(self, site: int, border: int = 0) -> Tensor:
        """The site's stored map with last frame's blocks that are copied this frame written in: whole, or with
        ``border`` > 0 only their frame of that width, all that neighbours' halos ever read of a copied block."""
        stored = self.state.maps[site]
        pending = self.state.pending.pop(site, None)
        if pending is not None:
            ops.combine(pending, self.carried, stored, border)
        return stored

    def _padded_blocks(self, site: int, x: Tensor, halo: tuple[int, int, int, int], replicate: bool,
                       value: float) -> Tensor:
        """Blocks ``x`` with their halo: executed neighbours from ``x``, copied ones from the stored map."""
        stored = self._bring_up_to_date(site, border=max(halo))
        top, bottom, left, right = halo
        shape = (x.shape[0], x.shape[1], x.shape[2] + top + bottom, x.shape[3] + left + right)
        buffer = self.state.padded_buffer(site, shape, stored)
        padded = ops.block_pad(x, self.layout.block_pos, stored, self.layout.exec_idx, halo, replicate, value,
                               buffer)
        self.state.keep_pending(site, x)
        return padded

    def _full_hw(self, x: Tensor) -> tuple[int, int]:
        """The map size a block-packed tensor stands for."""
        gh, gw = self.layout.grid_hw
        return (gh * x.shape[2], gw * x.shape[3]) if not self.dense else tuple(x.shape[-2:])

    def _window_op(self, spec: WindowSpec, func: Callable, args: tuple, kwargs: dict) -> Tensor:
        site, record = self._next_site()
        p = bind(args, kwargs, spec.names, spec.defaults)
        x = p["input"]
        tag = self.tag_of(x)
        if tag != BLOCK:
            self._record(SiteRecord(spec.name))
            return self.set_tag(self._call(plain(func), args, kwargs), tag)
        if x.dim() != 4:
            raise UnsupportedOpError(f"{spec.name} on a {x.dim()}-D tensor (blocks need N x C x H x W)")
        window = spec.window(p)
        halo = window.halo()
        if self.dense:
            out = func(*args, **kwargs)
            self._check_dense_window(spec.name, window, x, out)
            if any(halo):
                self._store(site, x)
            self._record(SiteRecord(spec.name, window=window))
            return self.set_tag(out, BLOCK)
        if window != record.window:
            raise UnsupportedOpError(f"{spec.name} runs with {window} on this frame, {record.window} on the dense "
                                     "frame that recorded it")
        out_block = self._strided_block(spec.name, x.shape[-1], window.stride)
        return self.set_tag(self._call(window_run(site, spec, halo, out_block), args, kwargs), BLOCK)

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

    def _check_size(self, name: str, asked: tuple[int, int], record: SiteRecord) -> None:
        if asked != record.out_hw:
            raise UnsupportedOpError(
                f"{name} asks for output size {asked} on this frame, {record.out_hw} on the dense frame that "
                "recorded it; the engine needs the same sizes every frame"
            )

    def _interpolate(self, func: Callable, args: tuple, kwargs: dict) -> Tensor:
        site, record = self._next_site()
        p = bind(args, kwargs, INTERPOLATE_NAMES, INTERPOLATE_DEFAULTS)
        x = p["input"]
        tag = self.tag_of(x)
        if tag is None:
            self._record(SiteRecord("interpolate"))
            return self._call(plain(func), args, kwargs)
        if not self.dense and x.dim() == 4:
            self._check_size("interpolate", requested_size(p, self._full_hw(x) if tag == BLOCK else x.shape[-2:]),
                             record)
        if tag == BLOCK:
            return self._interpolate_blocks(site, record, func, args, kwargs, p)
        if self.dense:  # a whole-frame tensor: back onto the block grid when it lands on a block level
            out = func(*args, **kwargs)
            out_hw = tuple(out.shape[-2:])
            on_grid = x.dim() == 4 and self.layout.block_of_level(out_hw) is not None
            self._record(SiteRecord("interpolate", out_hw=out_hw, out_is_block=on_grid))
            return self.set_tag(out, BLOCK if on_grid else DENSE)
        out = self._call(dense_resize_run(record), args, kwargs)
        return self.set_tag(out, BLOCK if record.out_is_block else DENSE)

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
            self._record(SiteRecord("interpolate", out_hw=(oh, ow), factor=oh // h,
                                    resize_op=self.op if mode == "bilinear" else -1))
            return self.set_tag(out, BLOCK)
        return self.set_tag(self._call(block_resize_run(site, record), args, kwargs), BLOCK)

    def mark_output_resizes(self, outputs: list[Any]) -> None:
        """After a dense frame: mark the bilinear block resizes whose result is one of the model's ``outputs`` and
        is read by no op, for sparse frames to resize straight into the output."""
        read = {source[1] for signature in self.state.ops for source in signature.sources
                if source[0] in (BLOCK, DENSE)}
        returned = {self._tags[id(leaf)][2][0] for leaf in outputs if self.tag_of(leaf) == BLOCK}
        self.state.trace = [replace(r, into_output=True) if r.resize_op in returned and r.resize_op not in read
                            else r for r in self.state.trace]

    def deferred_resize(self, output: Any) -> tuple[Tensor, int] | None:
        """(padded blocks, factor) when ``output`` is the placeholder of a resize left for the engine, else None."""
        entry = self._deferred.get(id(output))
        return (entry[1], entry[2]) if entry is not None and entry[0] is output else None

    def _whole_frame(self, func: Callable, args: tuple, kwargs: dict) -> Tensor:
        name = op_name(func)
        site, record = self._next_site()
        p = bind(args, kwargs, WHOLE_FRAME_OPS[func], {"return_indices": False})
        x = p["input"]
        tag = self.tag_of(x)
        if tag != BLOCK:
            self._record(SiteRecord(name))
            return self.set_tag(self._call(plain(func), args, kwargs), tag)
        if p["return_indices"]:
            raise UnsupportedOpError(f"{name} with return_indices=True")
        if self.dense:
            out = func(*args, **kwargs)
            self._store(site, x)
            self._record(SiteRecord(name, out_hw=tuple(out.shape[-2:])))
            return self.set_tag(out, DENSE)
        self._check_size(name, requested_pool_size(p["output_size"], self._full_hw(x)), record)
        return self.set_tag(self._call(whole_frame_run(site, func, record), args, kwargs), DENSE)

    # -- recording for replay ---------------------------------------------------------------------------------
    def _call(self, run: Run, args: tuple, kwargs: dict) -> Any:
        """``run`` this op's work (the plain op, or on a sparse frame its block work), recorded when recording."""
        out = run(self, args, kwargs)
        if self.recorder is not None:
            self.recorder.record(run, args, kwargs, out, self.tag_of)
        return out

