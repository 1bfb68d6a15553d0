"""A sparse frame's ops, recorded once and replayed without the model's Python.

The first sparse frame after a dense one runs the model under ``BlockMode``, which checks every op against the
dense frame and, through a ``Recorder``, notes what it ran: per op, the function that does its block work and
its arguments, with each tensor that an earlier op produced replaced by a reference to that op's output. Later
sparse frames of the clip run that ``Plan``: the same block work on this frame's tensors, without the model's
modules, the torch-function mode, the tags or the checks (on a GPU those cost more than the kernels). A forward
that reads a tensor's values into Python (``item``, ``bool``, ``tolist``...) may run other ops on another frame,
so its record is not replayed; nor is one whose model changed since (a module's training flag, a parameter or
buffer replaced).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from .trace import SCALARS

INPUT = (-1, 0)  # the reference to the frame's executed blocks, the model's input
# Queries whose non-tensor result depends on a tensor's metadata only, never on its values.
METADATA = frozenset({
    "shape", "size", "__len__", "numel", "nelement", "dim", "ndim", "ndimension", "dtype", "device", "layout",
    "is_contiguous", "stride", "storage_offset", "element_size", "is_floating_point", "is_complex", "is_cuda",
    "requires_grad", "get_device", "names",
})
Run = Callable[[Any, tuple, dict], Any]  # (the frame's BlockMode, args, kwargs) -> the op's result


@dataclass
class Step:
    """One op: ``run`` on the arguments, whose tensors at ``refs`` (positions in ``leaves``) are earlier outputs."""

    run: Run
    leaves: list[Any]
    refs: list[tuple[int, tuple[int, int]]]
    spec: Any  # the pytree of (args, kwargs); None when both are flat (leaves = args then kwargs' values)
    nargs: int
    keys: tuple[str, ...]

    def __call__(self, mode: Any, values: dict[tuple[int, int], Tensor]) -> Any:
        leaves = self.leaves.copy()
        for position, ref in self.refs:
            leaves[position] = values[ref]
        if self.spec is not None:
            args, kwargs = tree_unflatten(leaves, self.spec)
            return self.run(mode, args, kwargs)
        return self.run(mode, tuple(leaves[: self.nargs]), dict(zip(self.keys, leaves[self.nargs:])))


def _leaf(v: Any) -> bool:
    """Whether an argument holds no tensor inside: a tensor or a number, or a (1, 1) stride."""
    return not isinstance(v, (tuple, list, dict)) or (not isinstance(v, dict) and SCALARS.issuperset(map(type, v)))


class _Fingerprint:
    """A model's modules with their training flags, and each module's parameters and buffers by identity."""

    def __init__(self, model: nn.Module):
        self.modules = list(model.modules())
        self.training = [m.training for m in self.modules]
        self.tables = [(d, len(d)) for m in self.modules for d in (m._parameters, m._buffers)]
        self.tensors = [(d, k, v) for d, _ in self.tables for k, v in d.items()]

    def unchanged(self) -> bool:
        return ([m.training for m in self.modules] == self.training and all(len(d) == n for d, n in self.tables)
                and all(d.get(k) is v for d, k, v in self.tensors))


class Plan:
    """The recorded ops of a sparse frame and where the model's outputs come from."""

    def __init__(self, steps: list[Step], outputs: list[Any], output_spec: Any, model: nn.Module):
        self.steps, self.outputs, self.output_spec = steps, outputs, output_spec
        self._model, self._fingerprint = model, _Fingerprint(model)
        # per step, the outputs of earlier steps that no later step reads (nor the model returns): dropped after
        # it, as the model's own Python would drop them, so that memory is reused while it is still in cache
        last = {ref: i for i, step in enumerate(steps) for _, ref in step.refs}
        last.update((leaf.ref, len(steps)) for leaf in outputs if isinstance(leaf, _Output))
        self._read = set(last)  # the outputs worth keeping at all
        self._dropped: list[list[tuple[int, int]]] = [[] for _ in steps]
        for ref, i in last.items():
            if i < len(steps):
                self._dropped[i].append(ref)

    def fits(self, model: nn.Module) -> bool:
        """Whether the plan still describes ``model``'s forward (the same modules, modes and tensors)."""
        return model is self._model and self._fingerprint.unchanged()

    def run(self, mode: Any, blocks: Tensor) -> Any:
        """The model's output on ``blocks`` (this frame's executed blocks), ``mode`` holding the frame's state."""
        values: dict[tuple[int, int], Tensor] = {INPUT: blocks}
        for i, (step, dropped) in enumerate(zip(self.steps, self._dropped)):
            out = step(mode, values)
            for ref in dropped:
                del values[ref]
            if isinstance(out, Tensor):
                if (i, 0) in self._read:
                    values[(i, 0)] = out
            else:
                values.update(((i, j), t) for j, t in enumerate(tree_flatten(out)[0])
                              if isinstance(t, Tensor) and (i, j) in self._read)
        leaves = [values[leaf.ref] if isinstance(leaf, _Output) else leaf for leaf in self.outputs]
        return tree_unflatten(leaves, self.output_spec)


@dataclass(frozen=True)
class _Output:
    ref: tuple[int, int]


class Recorder:
    """Notes the ops of one checked sparse frame (``BlockMode`` calls ``record`` for each) into a ``Plan``."""

    def __init__(self, blocks: Tensor):
        self.steps: list[Step] = []
        self.replayable = True
        self._refs: dict[int, tuple[weakref.ref, tuple[int, int]]] = {}
        self._note(blocks, INPUT)

    def _note(self, t: Tensor, ref: tuple[int, int]) -> None:
        self._refs[id(t)] = (weakref.ref(t), ref)

    def ref_of(self, t: Tensor) -> tuple[int, int] | None:
        entry = self._refs.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def refuse(self) -> None:
        """This frame's record must not be replayed (the forward read tensor values, or ran untracked tensors)."""
        self.replayable = False

    def record(self, run: Run, args: tuple, kwargs: dict, out: Any, tag_of: Callable[[Tensor], str | None]) -> None:
        """An op that returned tensors: ``run(mode, args, kwargs)`` redoes its block work on another frame. A
        tensor argument that no recorded op produced is kept as it is: a parameter or a constant; one the mode
        tagged (``tag_of``) as a block or whole-frame tensor makes the record unfit for replay."""
        if all(map(_leaf, (*args, *kwargs.values()))):
            leaves, spec = [*args, *kwargs.values()], None
        else:
            leaves, spec = tree_flatten((args, kwargs))
        refs = []
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, Tensor):
                ref = self.ref_of(leaf)
                if ref is not None:
                    refs.append((i, ref))
                    leaves[i] = None  # the record holds no activation of this frame: each replay puts its own there
                elif tag_of(leaf) is not None:
                    self.refuse()
        index = len(self.steps)
        self.steps.append(Step(run, leaves, refs, spec, len(args), tuple(kwargs)))
        if isinstance(out, Tensor):
            self._note(out, (index, 0))
        else:
            for j, t in enumerate(tree_flatten(out)[0]):
                if isinstance(t, Tensor):
                    self._note(t, (index, j))

    def plan(self, out: Any, model: nn.Module) -> Plan | None:
        """The plan of the recorded frame whose model returned ``out``, or None when it must not be replayed."""
        if not self.replayable:
            return None
        leaves, spec = tree_flatten(out)
        outputs: list[Any] = []
        for leaf in leaves:
            ref = self.ref_of(leaf) if isinstance(leaf, Tensor) else None
            if isinstance(leaf, Tensor) and ref is None:
                return None  # an output no recorded op produced
            outputs.append(_Output(ref) if ref is not None else leaf)
        return Plan(self.steps, outputs, spec, model)
