"""BlockSparseEngine: run an unchanged model on the executed blocks of each frame, keeping one frame of state."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from . import ops
from .geometry import BlockLayout, grid_shape
from .interceptor import BLOCK, BlockMode
from .replay import Recorder
from .state import TemporalState, own_copy

PLANNED_BATCH_SIZES = 16  # on CUDA: the block batch takes at most this many sizes below the whole grid


def default_batch_step(num_blocks: int, device: torch.device) -> int:
    """The block batch's padding step for a grid of ``num_blocks`` on ``device``: on CUDA the batch then takes at
    most ``PLANNED_BATCH_SIZES`` sizes; on a CPU padding would cost its full compute and new shapes little."""
    return -(-num_blocks // PLANNED_BATCH_SIZES) if device.type == "cuda" else 1


class BlockSparseEngine:
    """Block-sparse, temporally stateful execution of ``model`` (an nn.Module mapping N x C x H x W frames to
    N x K x H' x W' maps, or a tuple / dict of them, built from ops the engine supports).

    Call it once per frame of a clip with the frame batch and a bool execution grid N x gh x gw; non-executed
    blocks of every output are bitwise copies of the previous output. The first frame after ``reset()`` must
    execute every block. A frame where every block executes runs densely (exactly the plain model) and
    refreshes the state by reference; ``dense_when_full=False`` runs it block by block instead (for tests).
    A call's block-grid outputs are the next frame's source of copied blocks, kept by reference: read them
    freely, but clone one before editing it in place; the next sparse or empty-grid frame refuses an edited one
    (as autograd refuses a modified saved tensor). Once nothing outside the engine references an output (no
    name, container, view or array), a later sparse frame may write its own output into that memory; one the
    caller still holds never changes. Other outputs are the caller's own.

    ``batch_step`` pads each frame's batch of executed blocks to a multiple of that many blocks (padding rows are
    computed and dropped), so that the model sees few distinct batch sizes; None picks it by device: on CUDA a
    sixteenth of the grid's blocks (each new convolution shape costs a GPU library a new plan), elsewhere 1.

    ``replay``: the first sparse frame after a dense one runs the model with every op checked and recorded, later
    ones replay the record without the model's Python (``replay.py``); False checks every sparse frame.
    """

    def __init__(self, model: nn.Module, block_size: int, dense_when_full: bool = True,
                 batch_step: int | None = None, replay: bool = True):
        self.model = model
        self.block_size = block_size
        self.dense_when_full = dense_when_full
        self.batch_step = batch_step
        self.replay = replay
        self.state = TemporalState()

    def reset(self) -> None:
        """Forget the clip: the next frame must execute every block."""
        self.state.clear()

    def grid_shape(self, frames: Tensor) -> tuple[int, int]:
        return grid_shape(tuple(frames.shape[-2:]), self.block_size)

    def prime_batch_sizes(self, frames: Tensor) -> None:
        """Run ``frames`` once at every padded batch size their grid can take, on a state of its own (this
        engine's is untouched), so that a GPU library's one-time cost per new convolution shape is paid here and
        not in the frames that follow. Nothing to do without padding (a CPU): every count would be a size."""
        n, (gh, gw) = frames.shape[0], self.grid_shape(frames)
        total = n * gh * gw
        step = self._batch_step(total, frames.device)
        if step == 1:
            return
        probe = BlockSparseEngine(self.model, self.block_size, self.dense_when_full, step)
        probe(frames, torch.ones(n, gh, gw, dtype=torch.bool))
        for count in sorted({*range(step, total, step), total - 1} - {0}):  # total - 1: padded to the whole grid
            probe(frames, (torch.arange(total) < count).reshape(n, gh, gw))

    def __call__(self, frames: Tensor, grid: Tensor) -> Any:
        layout = self._layout(frames, grid)
        with torch.no_grad():
            if self.state.empty or (layout.all_executed and self.dense_when_full):
                return self._dense_frame(frames, layout)
            self.state.check_outputs_unmodified()
            if layout.num_exec == 0:
                return tree_unflatten([own_copy(leaf) for leaf in self.state.outputs], self.state.output_spec)
            out = self._sparse_frame(frames, layout)
            ops.check_device_errors(frames.device)
            return out

    def _layout(self, frames: Tensor, grid: Tensor) -> BlockLayout:
        if frames.dim() != 4:
            raise ValueError(f"frames must be N x C x H x W, got shape {tuple(frames.shape)}")
        want = (frames.shape[0], *self.grid_shape(frames))
        if tuple(grid.shape) != want:
            raise ValueError(f"execution grid has shape {tuple(grid.shape)}, frames of {tuple(frames.shape)} "
                             f"with block size {self.block_size} need {want}")
        step = self._batch_step(grid.numel(), frames.device)
        layout = BlockLayout.from_grid(grid.detach().to("cpu", torch.bool), step).on(frames.device)
        meta = (*frames.shape, frames.dtype, frames.device)
        if self.state.empty:
            if not layout.all_executed:
                raise ValueError("the first frame of a clip (after reset) must execute every block")
        elif meta != self.state.frame_meta:
            raise ValueError(f"frames changed from {self.state.frame_meta} to {meta} within a clip; call reset()")
        return layout

    def _batch_step(self, num_blocks: int, device: torch.device) -> int:
        return self.batch_step if self.batch_step is not None else default_batch_step(num_blocks, device)

    def _dense_frame(self, frames: Tensor, layout: BlockLayout) -> Any:
        self.state.clear()
        mode = BlockMode(self.state, layout, dense=True, model_input=frames, model=self.model)
        mode.set_tag(frames, BLOCK)
        with mode:
            out = self.model(frames)
        self.state.check_unmodified("map")
        leaves, spec = tree_flatten(out)
        mode.mark_output_resizes(leaves)
        self.state.unshare_outputs(leaves)
        self.state.keep_outputs(leaves, spec, [mode.tag_of(leaf) == BLOCK for leaf in leaves])
        self.state.frame_meta = (*frames.shape, frames.dtype, frames.device)
        return out

    def _sparse_frame(self, frames: Tensor, layout: BlockLayout) -> Any:
        mode = BlockMode(self.state, layout, dense=False, model_input=frames, model=self.model)
        blocks = ops.split(frames, layout.exec_idx, self.block_size)
        plan = self.state.plan if self.replay else None
        if plan is not None and plan.fits(self.model):
            out = plan.run(mode, blocks)
        else:
            mode.set_tag(blocks, BLOCK)
            mode.recorder = Recorder(blocks) if self.replay else None
            with mode:
                out = self.model(blocks)
            mode.check_complete()
            self.state.plan = mode.recorder.plan(out, self.model) if self.replay else None
        self.state.check_unmodified("pending")
        previous_layout, self.state.pending_layout = self.state.pending_layout, layout
        leaves, spec = tree_flatten(out)
        if spec != self.state.output_spec:
            raise RuntimeError("the model's output structure differs from the last dense frame's")
        # where a spare output (see _combine_output) lacks the previous output's blocks and this frame copies them
        refresh = None if previous_layout is None else layout.newly_copied(previous_layout)
        returned = [self._combine_output(i, leaf, kept, layout, refresh, mode.deferred_resize(leaf)) if is_block
                    else leaf for i, (leaf, kept, is_block) in enumerate(zip(leaves, self.state.outputs,
                                                                             self.state.output_is_block))]
        self.state.keep_outputs(returned, spec, self.state.output_is_block)
        return tree_unflatten(returned, spec)

    def _combine_output(self, i: int, blocks: Tensor, previous: Tensor, layout: BlockLayout,
                        refresh: Tensor | None, resize: tuple[Tensor, int] | None) -> Tensor:
        """Output ``i``: the executed ``blocks`` over the ``previous`` output's copied ones; where ``blocks`` is a
        resize's placeholder, ``resize`` (padded blocks, factor) resized straight into it. Written into the output
        returned before ``previous`` (the spare) when nothing references it any more: it differs from ``previous``
        only at the blocks the last frame executed, so only ``refresh``, those of them this frame copies, move (a
        learned policy executes much the same blocks frame after frame); else into a new tensor, with every copied
        block."""
        block = blocks.shape[-1]
        spare = None if refresh is None else self.state.take_spare(i, previous)
        if spare is None:
            out = ops.transfer(previous, torch.empty_like(previous), layout.stale_idx, block)
        else:
            out = ops.transfer(previous, spare, refresh, block)
        if resize is not None:
            return ops.upsample_into(*resize, layout.write_idx, out)
        return ops.combine(blocks, layout.write_idx, out)

    def state_nbytes(self) -> int:
        """Bytes of temporal state held (stored maps, previous outputs and the spares they may be written into)."""
        return self.state.nbytes()
