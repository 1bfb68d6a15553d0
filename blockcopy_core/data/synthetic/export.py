"""Writing synthetic clips to disk, so the same clips can go through the Cityscapes and demo loaders.

Also the command line behind ``python -m blockcopy_core.data.synthetic``::

    python -m blockcopy_core.data.synthetic --export-cityscapes DIR --num-clips 4 --clip-length 20
    python -m blockcopy_core.data.synthetic --export-demo DIR --ext jpg
    python -m blockcopy_core.data.synthetic --export-video street.mp4 --clip-length 300 --height 576 --width 768
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from blockcopy_core.constants import TRAIN_ID_TO_LABEL_ID
from blockcopy_core.data.clips import Clip
from blockcopy_core.data.scene import SyntheticClipSpec, render_clip
from blockcopy_core.data.synthetic.source import synthetic_clips
from blockcopy_core.data.synthetic.video import write_synthetic_video

CITYSCAPES_SEQUENCE_LENGTH = 20  # the annotated frame is the 20th of a Cityscapes snippet (frame number 19)
_SAVE_OPTIONS = dict(compress_level=1, quality=95)  # fast PNG (still lossless), high-quality JPEG
_DESCRIPTION = "Procedural street-scene videos with Cityscapes trainId labels on every frame."


def _specs(clips: Sequence[Clip]) -> list[SyntheticClipSpec]:
    specs = [clip.synthetic for clip in clips]
    missing = [clip.clip_id for clip, spec in zip(clips, specs, strict=True) if spec is None]
    if missing:
        raise ValueError(f"only synthetic clips can be exported; not synthetic: {', '.join(missing)}")
    if not specs:
        raise ValueError("no clips to export")
    return specs  # type: ignore[return-value]


def export_cityscapes(root: str | Path, clips: Sequence[Clip], split: str = "val") -> None:
    """Write clips in the Cityscapes video layout under ``root``, one sequence per clip.

    City ``synth<seed>``, sequence number = clip index; a clip's frames become sequence frames
    ``20 - n .. 19`` and its last frame the annotated frame (``leftImg8bit`` + ``gtFine`` labelIds),
    exactly like a Cityscapes snippet, so the Cityscapes loader reads them back.
    """
    root = Path(root)
    label_ids = np.zeros(256, np.uint8)  # trainId -> labelId; ignore -> 0 ("unlabeled")
    label_ids[: len(TRAIN_ID_TO_LABEL_ID)] = TRAIN_ID_TO_LABEL_ID
    for spec in _specs(clips):
        if spec.num_frames > CITYSCAPES_SEQUENCE_LENGTH:
            raise ValueError(f"clip {spec.name} has {spec.num_frames} frames; the Cityscapes layout holds at "
                             f"most {CITYSCAPES_SEQUENCE_LENGTH} before the annotated frame")
        city = f"synth{spec.seed}"
        dirs = {kind: root / kind / split / city for kind in ("leftImg8bit_sequence", "leftImg8bit", "gtFine")}
        for folder in dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        first = CITYSCAPES_SEQUENCE_LENGTH - spec.num_frames
        for t, (image, train_ids) in enumerate(render_clip(spec)):
            stem = f"{city}_{spec.clip_index:06d}_{first + t:06d}"
            Image.fromarray(image).save(dirs["leftImg8bit_sequence"] / f"{stem}_leftImg8bit.png", **_SAVE_OPTIONS)
            if t == spec.num_frames - 1:
                Image.fromarray(image).save(dirs["leftImg8bit"] / f"{stem}_leftImg8bit.png", **_SAVE_OPTIONS)
                Image.fromarray(label_ids[train_ids]).save(dirs["gtFine"] / f"{stem}_gtFine_labelIds.png",
                                                           **_SAVE_OPTIONS)


def export_demo(folder: str | Path, clips: Sequence[Clip], ext: str = "png") -> None:
    """Write the clips' frames as images ``<clip_id>/frame<t>.<ext>`` (unpadded numbers: natural sort order)."""
    if ext.lower() not in ("png", "jpg", "jpeg"):
        raise ValueError(f"demo export extension must be png, jpg or jpeg, got {ext!r}")
    for clip, spec in zip(clips, _specs(clips), strict=True):
        out = Path(folder) / clip.clip_id
        out.mkdir(parents=True, exist_ok=True)
        for t, (image, _) in enumerate(render_clip(spec)):
            Image.fromarray(image).save(out / f"frame{t}.{ext}", **_SAVE_OPTIONS)


def main(argv: Sequence[str] | None = None) -> None:
    """Export synthetic clips as the command line (``argv``, default ``sys.argv[1:]``) asks."""
    parser = argparse.ArgumentParser(prog="python -m blockcopy_core.data.synthetic", description=_DESCRIPTION)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--export-cityscapes", metavar="DIR", help="write the Cityscapes video layout here")
    target.add_argument("--export-demo", metavar="DIR", help="write a folder of images here")
    target.add_argument("--export-video", metavar="FILE", help="write one scene of --clip-length frames as an H.264 "
                                                                "video here (a still camera unless --panning)")
    parser.add_argument("--num-clips", type=int, default=10)
    parser.add_argument("--first-clip", type=int, default=0)
    parser.add_argument("--clip-length", type=int, default=CITYSCAPES_SEQUENCE_LENGTH)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="val", help="Cityscapes split folder name")
    parser.add_argument("--ext", default="png", help="demo image format: png or jpg")
    parser.add_argument("--fps", type=float, default=25, help="video frame rate")
    parser.add_argument("--panning", action="store_true", help="video: a camera that pans")
    args = parser.parse_args(argv)
    if args.export_video:
        write_synthetic_video(args.export_video, args.clip_length, args.height, args.width, args.fps, args.seed,
                              args.panning)
        return
    clips = synthetic_clips(args.num_clips, args.clip_length, args.height, args.width, args.seed, args.first_clip)
    if args.export_cityscapes:
        export_cityscapes(args.export_cityscapes, clips, args.split)
    else:
        export_demo(args.export_demo, clips, args.ext)
