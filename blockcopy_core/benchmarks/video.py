"""Video decoding against the model: ``python -m jobs.benchmark --suite video``.

For each frame size, writes a synthetic street video (untimed), then times per frame, side by side in one
process: decoding it (``data.decode``, as the actors do), static SwiftNet, BlockCopy with a random half of the
blocks, and writing the overlay video (blend, legend, H.264). Decoding runs ahead of the model in a background
thread, so it is hidden while it takes less time per frame than the model does; the ratio column says by how much.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..blockcopy import BlockCopyModel
from ..data.decode import iter_video_frames
from ..data.encode import VideoEncoder
from ..data.segments import plan_segments
from ..data.synthetic.video import write_synthetic_video
from ..data.transforms import normalize, pad_to_multiple
from ..data.videofiles import probe_video
from ..models import build_swiftnet, fold_batchnorm
from ..pipeline.video_output import blend
from ..settings import BlockCopySettings
from .engine import parse_config


def per_frame_ms(frames: Iterator[object], count: int) -> float:
    """Milliseconds per item of ``frames`` (``count`` of them), consumed as fast as they come."""
    tick = time.perf_counter()
    for _ in range(count):
        next(frames)
    return 1000 * (time.perf_counter() - tick) / count


def model_ms(model: Callable[[torch.Tensor], torch.Tensor], inputs: list[torch.Tensor]) -> float:
    """Milliseconds per frame of ``model`` over ``inputs`` (the first frame, fully executed, untimed)."""
    with torch.no_grad():
        model(inputs[0])
        tick = time.perf_counter()
        for x in inputs[1:]:
            model(x)
    return 1000 * (time.perf_counter() - tick) / (len(inputs) - 1)


def measure(height: int, width: int, block: int, frames: int, folder: Path) -> dict:
    path = write_synthetic_video(folder / f"street_{height}x{width}.mp4", frames, height, width)
    (segment,) = plan_segments(probe_video(path), segment_length=frames)
    decode = per_frame_ms((image for _, image in iter_video_frames(segment)), frames)
    images = [image for _, image in iter_video_frames(segment)]
    inputs = [pad_to_multiple(normalize(image)[None], 32)[0].contiguous(memory_format=torch.channels_last)
              for image in images]
    net = fold_batchnorm(build_swiftnet("resnet18")).eval().to(memory_format=torch.channels_last)
    static = model_ms(net, inputs)
    blockcopy = model_ms(BlockCopyModel(net, BlockCopySettings(block_policy="random", block_size=block)), inputs)
    overlay = overlay_ms(images, folder / "overlay.mp4")
    return {"size": f"{height}x{width}", "decode_ms": decode, "static_ms": static, "random50_ms": blockcopy,
            "overlay_ms": overlay}


def overlay_ms(images: list[np.ndarray], path: Path) -> float:
    """Milliseconds per frame of writing the overlay video (blend with a fixed prediction, encode)."""
    prediction = np.zeros(images[0].shape[:2], np.uint8)
    tick = time.perf_counter()
    with VideoEncoder(path, 25) as encoder:
        for image in images:
            encoder.add(blend(image, prediction))
    return 1000 * (time.perf_counter() - tick) / len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.benchmark --suite video",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=parse_config, default=[(576, 768, 64), (1024, 2048, 128)],
                        help="HxW@block: frame size and BlockCopy block size")
    parser.add_argument("--frames", type=int, default=20, help="frames per video")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the actor's --cpus-per-actor)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| frame size | decode ms/frame | static ms/frame | BlockCopy random 50% ms/frame | decode / static | "
          "decode / BlockCopy | overlay writing ms/frame |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for height, width, block in args.configs:
            r = measure(height, width, block, args.frames, Path(folder))
            print(f"| {r['size']} | {r['decode_ms']:.1f} | {r['static_ms']:.0f} | {r['random50_ms']:.0f} | "
                  f"{r['decode_ms'] / r['static_ms']:.3f} | {r['decode_ms'] / r['random50_ms']:.3f} | "
                  f"{r['overlay_ms']:.1f} |", flush=True)
    return 0
