"""Clips from the Cityscapes video layout: the ``clip_length`` frames ending at each annotated frame.

``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` names the annotated frames,
``leftImg8bit_sequence/<split>/...`` holds the surrounding video (30 frames per snippet, the annotated one is
the 20th) and ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` the labels. Only the last frame of a clip
carries a label. Every sequence frame is checked when the list is built, so a missing file is reported
before any work starts.
"""

from __future__ import annotations

from pathlib import Path

from blockcopy_core.data.clips import Clip, select

MODES = ("train", "val", "test")
MAX_CLIP_LENGTH = 20  # frames up to and including the annotated one in a Cityscapes snippet
_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


def cityscapes_clips(
    root: str | Path, mode: str = "val", clip_length: int = 20, num_clips: int | None = None, first_clip: int = 0
) -> list[Clip]:
    """One clip per annotated frame of split ``mode`` (sorted by city, sequence, frame)."""
    if mode not in MODES:
        raise ValueError(f"Cityscapes mode must be one of {MODES}, got {mode!r}")
    if not 1 <= clip_length <= MAX_CLIP_LENGTH:
        raise ValueError(f"Cityscapes clip_length must be 1..{MAX_CLIP_LENGTH} (frames before the annotated "
                         f"one in a snippet), got {clip_length}")
    root = Path(root)
    annotated_dir = root / "leftImg8bit" / mode
    annotated = sorted(annotated_dir.glob(f"*/*{_IMAGE_SUFFIX}"))
    if not annotated:
        raise ValueError(f"no annotated frames (*{_IMAGE_SUFFIX}) under {annotated_dir}")
    return [_clip(root, mode, path, clip_length) for path in select(annotated, num_clips, first_clip, str(root))]


def _clip(root: Path, mode: str, annotated: Path, clip_length: int) -> Clip:
    stem = annotated.name[: -len(_IMAGE_SUFFIX)]
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        raise ValueError(f"not a Cityscapes frame name <city>_<seq>_<frame>{_IMAGE_SUFFIX}: {annotated}")
    city, seq, last = parts[0], parts[1], int(parts[2])
    if last + 1 < clip_length:
        raise ValueError(f"{annotated} is frame {last}: too early for a clip of {clip_length} frames")
    sequence_dir = root / "leftImg8bit_sequence" / mode / annotated.parent.name
    frames = []
    for number in range(last - clip_length + 1, last + 1):
        path = sequence_dir / f"{city}_{seq}_{number:06d}{_IMAGE_SUFFIX}"
        if not path.is_file():
            raise FileNotFoundError(f"missing Cityscapes sequence frame {path} (clip ending at {annotated})")
        frames.append(str(path))
    label = root / "gtFine" / mode / annotated.parent.name / f"{stem}{_LABEL_SUFFIX}"
    labels = (None,) * (clip_length - 1) + (str(label) if label.is_file() else None,)
    names = tuple(Path(p).name[: -len(_IMAGE_SUFFIX)] for p in frames)
    return Clip(clip_id=stem, source="cityscapes", frame_paths=tuple(frames), label_paths=labels, frame_names=names)
