"""What each kind of op does on a sparse frame's blocks, as a function ``run(mode, args, kwargs)`` of the frame's
``BlockMode`` (``mode``) and the op's arguments: the checked frame runs it, and later frames replay it (``replay``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from . import ops, twins
from .replay import Run
from .sites import INTERPOLATE_DEFAULTS, INTERPOLATE_NAMES, WHOLE_FRAME_OPS, WindowSpec, bind
from .state import SiteRecord


def plain(func: Callable) -> Run:
    return lambda mode, args, kwargs: func(*args, **kwargs)


def window_run(site: int, spec: WindowSpec, halo: tuple[int, int, int, int], out_block: int) -> Run:
    """A conv / pool on blocks: padded with their halo (when it has one), then run with padding 0."""
    def run(mode: Any, args: tuple, kwargs: dict) -> Tensor:
        p = bind(args, kwargs, spec.names, spec.defaults)
        x = p["input"]
        out = spec.unpadded(mode._padded_blocks(site, x, halo, False, spec.pad_value) if any(halo) else x, p)
        return out if out.shape[-2:] == (out_block, out_block) else out[..., :out_block, :out_block]
    return run


def block_resize_run(site: int, record: SiteRecord) -> Run:
    """A resize of blocks by ``record.factor``: bilinear from the blocks with a 1-pixel halo, or a placeholder
    that the engine resizes into the output (``record.into_output``)."""
    def run(mode: Any, args: tuple, kwargs: dict) -> Tensor:
        p = bind(args, kwargs, INTERPOLATE_NAMES, INTERPOLATE_DEFAULTS)
        x, f = p["input"], record.factor
        block = x.shape[-1] * f
        if p["mode"] != "bilinear":
            return F.interpolate(x, size=(block, block), mode=p["mode"])
        xp = mode._padded_blocks(site, x, (1, 1, 1, 1), True, 0.0)
        if not record.into_output:
            return twins.upsample_blocks(xp, f)
        placeholder = xp.new_empty(()).expand(x.shape[0], x.shape[1], block, block)
        mode._deferred[id(placeholder)] = (placeholder, xp, f)
        return placeholder
    return run


def dense_resize_run(record: SiteRecord) -> Run:
    """A resize of a whole-frame tensor to the dense frame's size, split into blocks when on the block grid."""
    def run(mode: Any, args: tuple, kwargs: dict) -> Tensor:
        p = bind(args, kwargs, INTERPOLATE_NAMES, INTERPOLATE_DEFAULTS)
        out = F.interpolate(p["input"], size=record.out_hw, mode=p["mode"], align_corners=p["align_corners"],
                            antialias=p["antialias"])
        if not record.out_is_block:
            return out
        return ops.split(out, mode.layout.exec_idx, mode.layout.block_of_level(record.out_hw))
    return run


def whole_frame_run(site: int, func: Callable, record: SiteRecord) -> Run:
    """A whole-frame op on blocks: the blocks written into the site's stored map, the op on the full map."""
    def run(mode: Any, args: tuple, kwargs: dict) -> Tensor:
        stored = mode._bring_up_to_date(site)
        ops.combine(bind(args, kwargs, WHOLE_FRAME_OPS[func], {})["input"], mode.layout.write_idx, stored)
        return func(stored, record.out_hw)
    return run
