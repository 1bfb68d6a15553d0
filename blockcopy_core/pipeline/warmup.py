"""The learned policy's warm-up: the clips it learns on before evaluation, and its progress saved as it goes, so
that an interrupted warm-up continues where it was (docs/policy.md, "Warm-up")."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import torch

from ..data import Clip
from ..reporting.files import publish, stage
from ..reporting.results import ClipResult
from ..reporting.schema import WARMUP_FILE
from .executor import Executor, batches
from .progress import Progress

log = logging.getLogger("blockcopy")
RELEASE_WARMUP_CLIPS = 600  # the original release's --num-clips-warmup
WARMUP_CLIPS_PER_EVAL_CLIP = 5  # synthetic default: an unbounded source, so in proportion to the evaluation
SAVE_EVERY_S = 60.0


def default_warmup_count(source: str, num_eval_clips: int, spare_clips: int) -> int:
    """Warm-up clips when ``--num-clips-warmup`` is not given: the release's 600 capped by the clips that are no
    evaluation clips (``spare_clips``); synthetic data (unbounded) 5 per evaluation clip, at most 600."""
    if source == "synthetic":
        return min(RELEASE_WARMUP_CLIPS, WARMUP_CLIPS_PER_EVAL_CLIP * num_eval_clips)
    return min(RELEASE_WARMUP_CLIPS, spare_clips)


def run_warmup(executor: Executor, clips: list[Clip], batch_size: int, report_dir: Path) -> None:
    """Let the policy learn on ``clips`` (unscored), saving its state and the batches done to ``WARMUP_FILE``
    every ``SAVE_EVERY_S`` at most and at the end; a saved warm-up of the same clips continues after its last save."""
    groups = batches(clips, batch_size)
    path = report_dir / WARMUP_FILE
    done = 0
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        done = saved["batches_done"]
        executor.load_policy_state(saved["policy"])
        log.info("warm-up continues after %d of %d batches (policy state saved in %s)", done, len(groups), path)
    last_save = time.monotonic()

    def record(results: list[ClipResult]) -> None:
        nonlocal done, last_save
        progress.add(results)
        done += 1  # batches run one after another, in order (one actor learns the warm-up)
        if done == len(groups) or time.monotonic() - last_save >= SAVE_EVERY_S:
            save(path, done, executor.policy_state())
            last_save = time.monotonic()

    todo = [clip for group in groups[done:] for clip in group]
    with Progress("warmup", len(todo), sum(clip.num_frames for clip in todo), executor.frames_done) as progress:
        executor.run_phase(groups[done:], "warmup", record)


def save(path: Path, batches_done: int, policy: bytes | None) -> None:
    buffer = io.BytesIO()
    torch.save({"batches_done": batches_done, "policy": policy}, buffer)
    publish((stage(path, lambda file: file.write(buffer.getvalue())), path))
