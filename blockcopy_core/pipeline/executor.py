"""Executors run batches of clips somewhere and hand back their results: the protocol and the inline one.

The job talks to an :class:`Executor` only; ``InlineExecutor`` runs everything in this process (no Ray needed,
for debugging and small runs) and ``ray_executor.RayExecutor`` spreads batches over Ray actors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from ..data import Clip
from .config import RunnerConfig, build_runner
from .results import ClipResult

ResultSink = Callable[[list[ClipResult]], None]


class Executor(Protocol):
    """Where clips run. ``run_phase`` hands every batch's results to ``on_results`` as they finish."""

    num_actors: int

    def run_phase(self, batches: list[list[Clip]], phase: str, on_results: ResultSink) -> None: ...

    def loop_first_clip(self, clip: Clip) -> None:
        """Keep ``clip``'s frames in memory and feed them for every later clip (``--single-clip-loop``)."""

    def policy_state(self) -> bytes | None:
        """The learned policy's serialised state (None for fixed policies)."""

    def load_policy_state(self, state: bytes) -> None: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs every batch in this process, one after another."""

    num_actors = 1

    def __init__(self, config: RunnerConfig, state_dict: dict[str, torch.Tensor]):
        self.runner = build_runner(config, state_dict)

    def run_phase(self, batches: list[list[Clip]], phase: str, on_results: ResultSink) -> None:
        for batch in batches:
            on_results(self.runner.run(batch, phase))

    def loop_first_clip(self, clip: Clip) -> None:
        self.runner.loop_first_clip(clip)

    def policy_state(self) -> bytes | None:
        return self.runner.policy_state()

    def load_policy_state(self, state: bytes) -> None:
        self.runner.load_policy_state(state)

    def close(self) -> None:
        pass
