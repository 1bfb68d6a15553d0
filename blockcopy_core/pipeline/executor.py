"""Executors run batches of clips somewhere and hand back their results: the protocol and the inline one.

The job talks to an :class:`Executor` only; ``InlineExecutor`` runs everything in this process (no Ray needed,
for debugging and small runs) and ``ray_executor.RayExecutor`` spreads batches over Ray actors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Protocol

import torch

from ..data import Clip
from ..reporting.results import ClipResult
from .config import RunnerConfig, build_runner

ResultSink = Callable[[list[ClipResult]], None]
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray treats the machine as a single local node


class Executor(Protocol):
    """Where clips run. ``run_phase`` hands every batch's results to ``on_results`` as they finish."""

    num_actors: int

    def run_phase(self, batches: list[list[Clip]], phase: str, on_results: ResultSink) -> None: ...

    def loop_first_clip(self, clip: Clip) -> None:
        """Keep ``clip``'s frames in memory and feed them for every later clip (``--single-clip-loop``)."""

    def prime(self, clip: Clip, batch_size: int) -> None:
        """Each runner's untimed dense pass over ``clip``'s first frame, before the timed run (``ClipRunner.prime``)."""

    def policy_state(self) -> bytes | None:
        """The learned policy's serialised state (None for fixed policies)."""

    def load_policy_state(self, state: bytes) -> None: ...

    def frames_done(self) -> int:
        """Frames run so far, all phases, counted as they run (a re-run clip's twice): for progress only."""

    def close(self) -> None: ...


def batches(clips: list[Clip], size: int) -> list[list[Clip]]:
    """Groups of up to ``size`` clips of equal length (clips side by side advance frame by frame together), in a
    fixed order: the clips' order within each length."""
    by_length: dict[int, list[Clip]] = {}
    for clip in clips:
        by_length.setdefault(clip.num_frames, []).append(clip)
    return [group[i : i + size] for group in by_length.values() for i in range(0, len(group), size)]


class InlineExecutor:
    """Runs every batch in this process, one after another."""

    num_actors = 1

    def __init__(self, config: RunnerConfig, state_dict: dict[str, torch.Tensor]):
        self.runner = build_runner(config, state_dict)
        self._frames = 0
        self.runner.on_frame = self._count

    def _count(self, frames: int) -> None:
        self._frames += frames

    def frames_done(self) -> int:
        return self._frames

    def run_phase(self, batches: list[list[Clip]], phase: str, on_results: ResultSink) -> None:
        for batch, upcoming in zip(batches, [*batches[1:], []], strict=True):
            on_results(self.runner.run(batch, phase, upcoming))

    def loop_first_clip(self, clip: Clip) -> None:
        self.runner.loop_first_clip(clip)

    def prime(self, clip: Clip, batch_size: int) -> None:
        self.runner.prime(clip, batch_size)

    def policy_state(self) -> bytes | None:
        return self.runner.policy_state()

    def load_policy_state(self, state: bytes) -> None:
        self.runner.load_policy_state(state)

    def close(self) -> None:
        pass


def import_ray_executor(local: bool) -> ModuleType:
    """The Ray executor's module. For a local instance (``local``), Ray is first told to keep its services on
    loopback instead of the machine's network address; Ray reads that when it is imported, hence the import here
    (which also keeps Ray out of inline runs)."""
    if local:
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    from . import ray_executor

    return ray_executor
