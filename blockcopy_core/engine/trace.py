"""What one forward did, op by op: the signature every sparse frame must repeat, and where in the model an op ran.

A sparse frame reads each call site's stored map by execution order, so it is only right when the forward runs
the ops of the last dense frame in the same order on the same data flow. An op's ``Signature`` is the function
and, for each tensor argument, where it came from: a tagged tensor by the op (and output position) that produced
it, a model parameter or buffer by name, any other tensor by shape and dtype. Python scalars are left out: a
value computed from a whole-frame result may change from frame to frame without touching the state.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple

from torch import Tensor, nn

SCALARS = frozenset({int, float, bool, str, type(None)})  # argument types that never hold a tensor
Source = tuple[Hashable, ...]  # ("block" | "dense", op, output) | ("param", name) | ("const", shape, dtype)


class Signature(NamedTuple):
    """One op of a forward: the function and the sources of its tensor arguments, in argument order."""

    func: Callable
    name: str
    sources: tuple[Source, ...]

    def describe(self) -> str:
        return f"{self.name}({', '.join(_describe_source(s) for s in self.sources)})"


def _describe_source(source: Source) -> str:
    kind = source[0]
    if kind == "param":
        return f"parameter {source[1]!r}"
    if kind == "const":
        return f"a {tuple(source[1])} constant"
    op = "the frames" if source[1] < 0 else f"op #{source[1]}"
    return f"{kind} tensor from {op}" + (f" (output {source[2]})" if source[2] else "")


def _collect_tensors(values: Iterable[Any], found: list[Tensor]) -> None:
    """Append the tensors in ``values`` to ``found``, in order, through nested lists, tuples and dicts."""
    for v in values:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (tuple, list)):
            if not SCALARS.issuperset(map(type, v)):  # skip the usual (1, 1) strides and paddings fast
                _collect_tensors(v, found)
        elif isinstance(v, dict):
            _collect_tensors(v.values(), found)


def model_tensor_names(model: nn.Module) -> dict[int, tuple[str, Tensor]]:
    """The model's parameters and buffers by identity -> (name, tensor): a name outlives ``model.to()``, an id
    may not, and a kept mapping tells a tensor by identity only while it holds the tensor."""
    return {id(t): (name, t) for name, t in (*model.named_parameters(), *model.named_buffers())}


def arg_tensors(args: tuple, kwargs: dict) -> tuple[Tensor, ...]:
    """The tensors of an op's positional then keyword arguments, in order, through nested lists, tuples and
    dicts (called on every op a model runs, so it avoids generators)."""
    found: list[Tensor] = []
    _collect_tensors(args, found)
    if kwargs:
        _collect_tensors(kwargs.values(), found)
    return tuple(found)


def layer_of(model: nn.Module) -> str:
    """The innermost module of ``model`` whose forward is on the call stack, as "layer 'name' (Type)"."""
    names = {id(m): name for name, m in model.named_modules()}
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_locals.get("self")
        if isinstance(module, nn.Module) and id(module) in names:
            name, kind = names[id(module)], type(module).__name__
            return f"layer {name!r} ({kind})" if name else f"the model's own forward ({kind})"
        frame = frame.f_back
    return "the model (no layer on the call stack)"
