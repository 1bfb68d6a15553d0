"""Executor that runs every clip in this process, one batch after another (debugging; no Ray needed)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from blockcopy_core.data import Clip
from blockcopy_core.runner import ClipResult
from blockcopy_core.worker import WorkerConfig, build_runner


class InlineExecutor:
    num_actors = 1

    def __init__(self, config: WorkerConfig, state_dict: dict[str, torch.Tensor]):
        self.runner = build_runner(config, state_dict)
        self.device = str(self.runner.device)

    def run_phase(self, batches: list[list[Clip]], phase: str,
                  on_results: Callable[[list[ClipResult]], None]) -> None:
        measure = self.runner.measure
        self.runner.measure = measure and phase == "eval"  # warm-up clips are not scored
        try:
            for batch in batches:
                results = self.runner.run(batch, phase)
                for result in results:
                    result.actor, result.node, result.device = "inline", "local", self.device
                on_results(results)
        finally:
            self.runner.measure = measure

    def loop_first_clip(self, clip: Clip) -> None:
        self.runner.loop_first_clip(clip)

    def policy_state(self) -> bytes | None:
        return self.runner.policy_state()

    def load_policy_state(self, state: bytes) -> None:
        self.runner.load_policy_state(state)

    def close(self) -> None:
        pass
