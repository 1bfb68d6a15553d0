"""One frame of temporal state: what the engine remembers between frames of a clip.

Per call site (an op that looks across block borders, numbered by execution order within one forward) the
full input map as it stood after the last frame; the model's previous outputs; and the trace of the last dense
frame (each site's op and dense output size), which sparse frames follow to size whole-frame ops.

A sparse frame does not copy its executed blocks into the stored maps: it keeps the site's block batch by
reference ("pending") and the next frame copies in only those blocks it does not execute again (it reads the
others from its own blocks), at halo sites only their frame as wide as the halo. A stored map is therefore
current except at blocks that the pending batch holds and, at halo sites, inside the frames of blocks copied
since the last dense frame, where nothing reads it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .geometry import BlockLayout, Window
from .replay import Plan
from .trace import Signature


@dataclass(frozen=True)
class SiteRecord:
    """What a call site did on the last dense frame."""

    name: str
    out_hw: tuple[int, int] | None = None  # dense output size of whole-frame and resize ops
    factor: int = 1  # integer upsampling factor of a block-level resize
    out_is_block: bool = False  # a resize of a whole-frame tensor back onto the block grid
    window: Window | None = None  # kernel, stride, padding, dilation of a conv / pool site on blocks
    resize_op: int = -1  # a bilinear resize of blocks: its index among the frame's ops
    into_output: bool = False  # ... whose result the model returns as it is and no op reads


@dataclass
class TemporalState:
    """Stored maps per site, previous outputs, dense-frame trace; replaced wholesale by each dense frame."""

    maps: dict[int, Tensor] = field(default_factory=dict)
    pending: dict[int, Tensor] = field(default_factory=dict)  # the last sparse frame's blocks per site
    pending_layout: BlockLayout | None = None  # the layout of the frame that left ``pending``
    versions: dict[tuple[str, int], int] = field(default_factory=dict)  # ("map" | "pending", site) -> version
    output_versions: list[int | None] = field(default_factory=list)  # of returned outputs kept by reference
    trace: list[SiteRecord] = field(default_factory=list)
    ops: list[Signature] = field(default_factory=list)  # every op of the last dense frame, in order
    outputs: list[Any] = field(default_factory=list)  # flattened model outputs of the last frame
    output_spec: Any = None
    output_is_block: list[bool] = field(default_factory=list)
    frame_meta: tuple | None = None  # (N, C, H, W, dtype, device) of the frames that built this state
    scratch: dict[int, Tensor] = field(default_factory=dict)  # per-site padded-block buffers, reused each frame
    params: dict[int, tuple[str, Tensor]] = field(default_factory=dict)  # the model's tensors at the dense frame
    # per output, the block-grid output returned before the kept one (it differs from it only at the blocks
    # ``pending_layout`` executed), and its version then: the next sparse frame may write into it
    spares: list[Tensor | None] = field(default_factory=list)
    spare_versions: list[int | None] = field(default_factory=list)
    plan: Plan | None = None  # the recorded ops of the first sparse frame since the dense one, for the others

    @property
    def empty(self) -> bool:
        return self.frame_meta is None

    def padded_buffer(self, site: int, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A ``shape`` buffer for a site's padded blocks, laid out like ``like``; grown when too small."""
        fmt = torch.channels_last if not like.is_contiguous() else torch.contiguous_format
        buf = self.scratch.get(site)
        if (buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != like.dtype
                or buf.device != like.device or not buf.is_contiguous(memory_format=fmt)):
            buf = torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)
            self.scratch[site] = buf
        return buf[: shape[0]]

    def clear(self) -> None:
        self.maps.clear()
        self.pending.clear()
        self.pending_layout = None
        self.versions.clear()
        self.trace.clear()
        self.ops.clear()
        self.outputs, self.output_spec, self.output_is_block, self.frame_meta = [], None, [], None
        self.output_versions = []
        self.params = {}
        self.spares, self.spare_versions = [], []
        self.plan = None

    def store(self, site: int, tensor: Tensor, owned: bool) -> None:
        """Keep ``tensor`` as a site's map; by reference (it is this frame's activation, nobody else's) unless
        it is not ``owned`` (the caller's own input) or not laid out for the kernels."""
        if not owned:
            tensor = tensor.clone(memory_format=torch.preserve_format)
        elif not (tensor.is_contiguous() or tensor.is_contiguous(memory_format=torch.channels_last)):
            tensor = tensor.contiguous()
        self.maps[site] = tensor
        self.versions[("map", site)] = tensor._version

    def unshare_outputs(self, outputs: list[Any]) -> None:
        """Clone stored maps that are (views of) model outputs: sparse frames update maps in place, and an
        output already returned must not change."""
        out_storages = {o.untyped_storage().data_ptr() for o in outputs if isinstance(o, Tensor)}
        for site, tensor in self.maps.items():
            if tensor.untyped_storage().data_ptr() in out_storages:
                self.maps[site] = tensor.clone(memory_format=torch.preserve_format)

    def keep_outputs(self, outputs: list[Any], spec: Any, is_block: list[bool]) -> None:
        """Keep a frame's flattened outputs: the block-grid ones (``is_block``) by reference, the tensors returned
        to the caller, with their versions for ``check_outputs_unmodified``; the others as copies of their own.
        The outputs kept until now become the spares (none after a dense frame, which clears the state first)."""
        self.spares, self.spare_versions = self.outputs, self.output_versions
        self.outputs = [o if block else own_copy(o) for o, block in zip(outputs, is_block, strict=True)]
        self.output_spec, self.output_is_block = spec, is_block
        self.output_versions = [o._version if block else None for o, block in zip(outputs, is_block)]

    def take_spare(self, i: int, like: Tensor) -> Tensor | None:
        """Output ``i``'s spare when this frame may write into it: nothing outside this state references it (no
        name, container, view or array; a caller holding the output keeps it as it was), it is unchanged since it
        was returned and laid out like ``like``. None otherwise."""
        if i >= len(self.spares) or self.spares[i] is None or not unreferenced(self.spares, i):
            return None
        spare, self.spares[i] = self.spares[i], None
        if (spare._version != self.spare_versions[i] or spare.shape != like.shape or spare.stride() != like.stride()
                or spare.dtype != like.dtype or spare.device != like.device):
            return None
        return spare.detach()  # a new tensor object: one returned earlier is never returned again

    def check_outputs_unmodified(self) -> None:
        """Refuse to copy blocks from a returned output that was edited in place since it was returned."""
        for i, (output, version) in enumerate(zip(self.outputs, self.output_versions)):
            if version is not None and output._version != version:
                raise RuntimeError(
                    f"output {i} of the previous frame was modified in place after it was returned; the engine "
                    "copies this frame's unexecuted blocks from it: clone an output before editing it, or reset()"
                )

    def keep_pending(self, site: int, blocks: Tensor) -> None:
        """Keep a sparse frame's blocks at a site by reference, for the next frame to copy in what it needs."""
        self.pending[site] = blocks
        self.versions[("pending", site)] = blocks._version

    def check_unmodified(self, kind: str) -> None:
        """Stored maps (``kind="map"``, after a dense frame) and pending blocks (``"pending"``, after a sparse one)
        are references to the forward's activations: an in-place op on one after its site ran would silently
        corrupt the next frame, so refuse it."""
        stored = self.maps if kind == "map" else self.pending
        for (entry_kind, site), version in self.versions.items():
            if entry_kind == kind and site in stored and stored[site]._version != version:
                raise RuntimeError(
                    f"the input of op #{site} ({self.trace[site].name}) was modified in place after the op ran; "
                    "the block-sparse engine keeps it as temporal state and needs it unchanged"
                )

    def nbytes(self) -> int:
        """Bytes held: stored maps, pending blocks, previous outputs and spares (shared storage once)."""
        seen: dict[int, int] = {}
        outputs = [o for o in (*self.outputs, *self.spares) if isinstance(o, Tensor)]
        for t in [*self.maps.values(), *self.pending.values(), *outputs]:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return sum(seen.values())


def _references(holder: list, i: int) -> tuple[int, int]:
    """References to the tensor ``holder[i]`` (counted from here) and to its storage."""
    return sys.getrefcount(holder[i]), torch._C._storage_Use_Count(holder[i].untyped_storage()._cdata)


def _alone() -> tuple[int, int] | None:
    """``_references`` of a tensor that only a list holds, or None where torch cannot count storage users."""
    try:
        return _references([torch.empty(1)], 0)
    except (AttributeError, TypeError):
        return None


ALONE = _alone()


def unreferenced(holder: list, i: int) -> bool:
    """Whether nothing but ``holder`` references the tensor ``holder[i]`` or its storage."""
    if ALONE is None or not isinstance(holder[i], Tensor):
        return False
    tensor_refs, storage_refs = _references(holder, i)
    return tensor_refs <= ALONE[0] and storage_refs <= ALONE[1]


def own_copy(leaf: Any) -> Any:
    """A tensor output as a tensor of its own (other leaves as they are)."""
    return leaf.clone(memory_format=torch.preserve_format) if isinstance(leaf, Tensor) else leaf
