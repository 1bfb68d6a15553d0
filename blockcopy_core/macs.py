"""Counting multiply-accumulates actually executed, from the tensor shapes that run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch.utils.flop_counter import FlopCounterMode

T = TypeVar("T")


def count_macs(fn: Callable[..., T], *args, **kwargs) -> tuple[T, int]:
    """Run ``fn(*args, **kwargs)`` and return its result with the MACs it executed (FLOPs / 2).

    Uses torch's FlopCounterMode, which sees every convolution and matmul with its real shapes, so the same
    counter measures dense frames and block-sparse ones (blocks plus their halos).
    """
    counter = FlopCounterMode(display=False)
    with counter:
        result = fn(*args, **kwargs)
    return result, counter.get_total_flops() // 2
