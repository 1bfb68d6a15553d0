"""Clips from a folder of images, taken as one video in natural sort order (img2 before img10).

Every ``.png``/``.jpg``/``.jpeg`` file (any letter case) under the folder, recursively, ordered by its path
relative to the folder, is cut into consecutive clips of ``clip_length`` frames; the last may be shorter.
Demo clips have no labels.
"""

from __future__ import annotations

from pathlib import Path

from natsort import natsorted

from blockcopy_core.data.clips import Clip, select

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def demo_frames(folder: str | Path) -> list[Path]:
    """All images under ``folder`` in natural sort order of their relative paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"demo folder {folder} does not exist or is not a folder")
    images = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under demo folder {folder}")
    return natsorted(images, key=lambda p: p.relative_to(folder).as_posix())


def demo_clips(
    folder: str | Path, clip_length: int = 20, num_clips: int | None = None, first_clip: int = 0
) -> list[Clip]:
    """Consecutive clips of ``clip_length`` frames; frame names are relative paths without extension."""
    folder = Path(folder)
    frames = demo_frames(folder)
    chunks = [frames[i : i + clip_length] for i in range(0, len(frames), clip_length)]
    clips = []
    for index, chunk in enumerate(chunks):
        clips.append(
            Clip(
                clip_id=f"demo_{index:05d}",
                source="demo",
                frame_paths=tuple(str(p) for p in chunk),
                label_paths=(None,) * len(chunk),
                frame_names=tuple(p.relative_to(folder).with_suffix("").as_posix() for p in chunk),
            )
        )
    return select(clips, num_clips, first_clip, str(folder))
