"""The synthetic clip source: descriptors of the seeded set of procedural street-scene clips."""

from __future__ import annotations

from blockcopy_core.data.clips import Clip
from blockcopy_core.data.scene.spec import SyntheticClipSpec

# Disjoint ranges of clip indices per use, so that no run is scored on clips its model or policy learned from.
EVAL_FIRST = 0
WARMUP_FIRST = 100_000  # the learned policy's warm-up
TRAIN_FIRST = 200_000  # jobs.train: training ...
VAL_FIRST = 300_000  # ... and validation
UNSEEN_FIRST = 500_000  # none of the above: checks of a trained checkpoint


def synthetic_clips(
    num_clips: int, clip_length: int, height: int, width: int, seed: int, first_clip: int = 0
) -> list[Clip]:
    """Clip descriptors for clips ``first_clip .. first_clip + num_clips - 1`` of the seeded video set.

    Static and panning clips alternate (the phase depends on the seed), so any range is about half each.
    """
    if num_clips < 1:
        raise ValueError(f"synthetic source needs num_clips >= 1, got {num_clips}")
    clips = []
    for index in range(first_clip, first_clip + num_clips):
        spec = SyntheticClipSpec(seed, index, height, width, clip_length, panning=(index + seed) % 2 == 1)
        names = tuple(f"synthetic/{spec.name}/{t:06d}" for t in range(clip_length))
        clips.append(
            Clip(
                clip_id=f"synthetic_{spec.name}",
                source="synthetic",
                frame_paths=names,
                label_paths=(None,) * clip_length,
                synthetic=spec,
            )
        )
    return clips
