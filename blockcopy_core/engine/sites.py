"""How the engine reads the ops that look across block borders: their arguments and sliding windows.

Each ``OpSpec`` binds a call's arguments by name, tells the window (kernel, stride, padding, dilation), the
value a dense op pads with at the image border, and calls the op again without padding on padded blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import Window, pair
from .small_conv import conv_as_gemm, gemm_pays


class UnsupportedOpError(RuntimeError):
    """An op the engine cannot run on blocks (named in the message)."""


@lru_cache(maxsize=4096)  # every op a model runs asks
def op_name(func: Callable) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    if name == "fn":  # torch's boolean_dispatch wrappers (max_pool2d)
        name = "max_pool2d"
    elif name == "__get__":  # a tensor property (x.shape, x.T): name the property
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name


def bind(args: tuple, kwargs: dict, names: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """Arguments of a call by parameter name."""
    bound = dict(defaults)
    bound.update(zip(names, args))
    bound.update(kwargs)
    return bound


@dataclass(frozen=True)
class WindowSpec:
    """A conv / pool op: how to read its window and rerun it with padding 0."""

    name: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    window: Callable[[dict[str, Any]], Window]
    pad_value: float
    unpadded: Callable[[Tensor, dict[str, Any]], Tensor]


def _conv_padding(p: dict[str, Any]) -> tuple[int, int]:
    padding, dilation = p["padding"], pair(p["dilation"], "dilation")
    kernel = p["weight"].shape[-2:]
    if padding == "valid":
        return 0, 0
    if padding == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise UnsupportedOpError("conv2d with padding='same' and an even kernel pads asymmetrically")
        return total[0] // 2, total[1] // 2
    return pair(padding, "padding")


def _conv_window(p: dict[str, Any]) -> Window:
    if p["weight"].dim() != 4:
        raise UnsupportedOpError(f"conv2d with a {p['weight'].dim()}-D weight")
    return Window(tuple(p["weight"].shape[-2:]), pair(p["stride"], "stride"), _conv_padding(p),
                  pair(p["dilation"], "dilation"))


def _conv_unpadded(x: Tensor, p: dict[str, Any]) -> Tensor:
    stride = pair(p["stride"], "stride")
    if gemm_pays(x, p["weight"], stride, pair(p["dilation"], "dilation"), p["groups"]):
        return conv_as_gemm(x, p["weight"], p["bias"], stride[0])
    return torch.conv2d(x, p["weight"], p["bias"], p["stride"], 0, p["dilation"], p["groups"])


def _pool_stride(p: dict[str, Any]) -> tuple[int, int]:
    stride = p["stride"]
    return pair(p["kernel_size"] if stride is None or stride == [] or stride == () else stride, "stride")


def _max_pool_window(p: dict[str, Any]) -> Window:
    if p.get("return_indices"):
        raise UnsupportedOpError("max_pool2d with return_indices=True")
    return Window(pair(p["kernel_size"], "kernel_size"), _pool_stride(p), pair(p["padding"], "padding"),
                  pair(p["dilation"], "dilation"))


def _max_pool_unpadded(x: Tensor, p: dict[str, Any]) -> Tensor:
    return F.max_pool2d(x, p["kernel_size"], _pool_stride(p), 0, p["dilation"], p["ceil_mode"])


def _avg_pool_window(p: dict[str, Any]) -> Window:
    padding = pair(p["padding"], "padding")
    if any(padding) and not p["count_include_pad"]:
        raise UnsupportedOpError("avg_pool2d with padding and count_include_pad=False (border divisor differs)")
    return Window(pair(p["kernel_size"], "kernel_size"), _pool_stride(p), padding, (1, 1))


def _avg_pool_unpadded(x: Tensor, p: dict[str, Any]) -> Tensor:
    return F.avg_pool2d(x, p["kernel_size"], _pool_stride(p), 0, p["ceil_mode"], True, p["divisor_override"])


CONV = WindowSpec(
    "conv2d", ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}, _conv_window, 0.0, _conv_unpadded,
)
MAX_POOL = WindowSpec(
    "max_pool2d", ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False},
    _max_pool_window, float("-inf"), _max_pool_unpadded,
)
AVG_POOL = WindowSpec(
    "avg_pool2d", ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True, "divisor_override": None},
    _avg_pool_window, 0.0, _avg_pool_unpadded,
)
WINDOW_OPS: dict[Callable, WindowSpec] = {
    torch.conv2d: CONV, F.max_pool2d: MAX_POOL, torch.max_pool2d: MAX_POOL, F.avg_pool2d: AVG_POOL,
}

INTERPOLATE_NAMES = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
INTERPOLATE_DEFAULTS = {"size": None, "scale_factor": None, "mode": "nearest", "align_corners": None,
                        "recompute_scale_factor": None, "antialias": False}

# Whole-frame ops: they run on the combined full map; their result is a dense (not block-packed) tensor.
WHOLE_FRAME_OPS: dict[Callable, tuple[str, ...]] = {
    F.adaptive_avg_pool2d: ("input", "output_size"),
    F.adaptive_max_pool2d: ("input", "output_size", "return_indices"),
}

# Ops correct on blocks as they are: per element, per channel, or metadata.
ELEMENTWISE = frozenset("""
add add_ sub sub_ rsub mul mul_ div div_ true_divide neg neg_ abs pow square sqrt rsqrt exp log maximum minimum
where clamp clamp_ clip relu relu_ relu6 hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ gelu silu mish
softplus sigmoid sigmoid_ tanh tanh_ hardswish hardsigmoid prelu contiguous clone detach to float half bfloat16
double type_as __add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ __imul__ __truediv__
__itruediv__ __neg__ batch_norm dropout dropout2d feature_dropout
""".split())
# Ops whose result takes its tag from ``self`` alone (the other tensor only gives a dtype or device).
SELF_TAGGED = frozenset({"to", "type_as"})
# Ops that may return their input itself (when it already has the layout or dtype asked for): their result
# keeps the input's producer, so that the op sequence reads the same whichever way they went.
PASS_THROUGH = frozenset({"contiguous", "to", "type_as", "float", "half", "bfloat16", "double", "detach"})
# Per-channel ops whose constant arguments are parameters indexed by channel, not broadcast over pixels.
PER_CHANNEL_PARAMS = frozenset({"batch_norm", "prelu"})
# Ops correct on blocks when they work along the channel dim (argument position of ``dim``).
CHANNEL_DIM_OPS = {"cat": 1, "concat": 1, "concatenate": 1, "softmax": 1, "log_softmax": 1, "split": 2,
                   "chunk": 2}
# Ops with a ``training`` flag (argument position) that must be off on blocks (batch statistics / masks).
TRAINING_FLAG = {"batch_norm": 5, "dropout": 2, "dropout2d": 2, "feature_dropout": 2}


def check_block_op(name: str, args: tuple, kwargs: dict) -> None:
    """Raise ``UnsupportedOpError`` unless the op ``name`` (``op_name``) gives the same result on blocks as on the
    full map."""
    if name in TRAINING_FLAG:
        pos = TRAINING_FLAG[name]
        training = kwargs.get("training", args[pos] if len(args) > pos else name.startswith("dropout"))
        if training:
            raise UnsupportedOpError(f"{name} in training mode (needs whole-frame statistics); call model.eval()")
        return
    if name in ELEMENTWISE:
        return
    if name in CHANNEL_DIM_OPS:
        pos = CHANNEL_DIM_OPS[name]
        dim = kwargs.get("dim", args[pos] if len(args) > pos else 0)
        first = args[0][0] if isinstance(args[0], (list, tuple)) else args[0]
        if isinstance(dim, int) and first.dim() == 4 and dim % 4 == 1:
            return
        raise UnsupportedOpError(f"{name} along dim {dim} cannot run on blocks (only the channel dim 1 can)")
    raise UnsupportedOpError(f"op {name!r} cannot run on blocks (it is not per-pixel and has no block rule)")


def check_constants(name: str, args: tuple, kwargs: dict, constants: list[Tensor]) -> None:
    """Raise ``UnsupportedOpError`` when a tensor that is not computed from the frames (``constants``: a model
    constant, or one built from a shape such as CoordConv's ``torch.linspace(-1, 1, x.shape[-1])``) varies over
    pixels or images: it would meet block-packed tensors as if it were one block."""
    if name in PER_CHANNEL_PARAMS:
        return
    for t in constants:
        shape = (1,) * max(4 - t.dim(), 0) + tuple(t.shape)[-4:]
        if shape[0] > 1 or shape[2] > 1 or shape[3] > 1:
            raise UnsupportedOpError(
                f"op {name!r} combines block-packed tensors with a {tuple(t.shape)} tensor that varies over pixels "
                "or images but is not computed from the frames (a constant, or built from a shape such as "
                "torch.linspace(..., x.shape[-1])); only per-channel constants (C x 1 x 1) can meet blocks"
            )


def requested_size(p: dict[str, Any], in_hw: tuple[int, int]) -> tuple[int, int]:
    """The output size an ``F.interpolate`` call asks for (``size``, or ``floor(input * scale_factor)``)."""
    if p["size"] is not None:
        return pair(tuple(p["size"]) if not isinstance(p["size"], int) else p["size"], "size")
    scale = p["scale_factor"]
    scale = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
    return int(in_hw[0] * float(scale[0]) // 1), int(in_hw[1] * float(scale[-1]) // 1)


def requested_pool_size(output_size: Any, in_hw: tuple[int, int]) -> tuple[int, int]:
    """The output size an adaptive pooling call asks for (``None`` entries keep the input's size)."""
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    size = size * 2 if len(size) == 1 else size
    return tuple(n if s is None else int(s) for s, n in zip(size, in_hw))
