"""Learned-policy cost on the CPU: ``python -m jobs.benchmark --suite policy``.

For each frame size / block size and each policy network: the shipped SwiftNet-RN18, built as the job builds it
(``pipeline.config.build_model``: BatchNorm folded, channels_last), wrapped with ``rl_semseg``, learns on warm-up
clips, then runs evaluation clips while it keeps learning; the seconds per frame of its three stages (policy
forward, block-sparse network, reward and policy update, from ``BlockCopyModel.stage_seconds``), of the network
stage the engine's block movements (``ops``: split, block_pad, combine, transfer, upsample_into) and the memory
faulted in per frame (minor page faults: fresh pages of a heap that is still growing), the static model's seconds on
the same frames, and the policy network's MACs. Frames of the variants are interleaved, clip by clip, because the
machine is shared.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..blockcopy import STAGES, BlockCopyModel
from ..data import build_clips, iter_frames
from ..data.transforms import normalize
from ..macs import count_macs
from ..models import SYNTHETIC_CHECKPOINT, read_state_dict
from ..pipeline.config import RunnerConfig, build_model
from ..policies import POLICY_NETS
from ..settings import BlockCopySettings
from .engine import movement_timer, parse_config

WARMUP_FIRST_CLIP = 100_000  # the job's warm-up range for synthetic clips: never the evaluation clips


@dataclass
class Tally:
    """Seconds per stage over the timed frames of one variant (``static``: the dense model's)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys((*STAGES, "static"), 0.0))
    frames: int = 0
    executed: float = 0.0  # sum of executed fractions
    movements: float = 0.0  # seconds of block movements (part of the network stage)
    faulted: float = 0.0  # bytes of memory faulted in

    def per_frame(self, stage: str) -> float:
        return self.seconds[stage] / max(self.frames, 1)


def frame_batches(count: int, length: int, first: int, h: int, w: int) -> Iterator[list[Tensor]]:
    """Normalised channels_last frames of ``count`` synthetic clips, each clip generated before it runs."""
    for clip in build_clips("synthetic", clip_length=length, num_clips=count, seed=0, height=h, width=w,
                            first_clip=first):
        yield [normalize(f.image)[None].contiguous(memory_format=torch.channels_last) for f in iter_frames(clip)]


def faulted_bytes() -> int:
    """Memory this process has faulted in so far (minor page faults)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt * resource.getpagesize()


@torch.no_grad()
def run_clip(model: BlockCopyModel, frames: list[Tensor], tally: Tally | None) -> None:
    """One clip through ``model``; with a tally, its frames after the first are timed (the first is dense)."""
    model.reset_temporal()
    moved: dict[str, float] = {}
    with movement_timer(moved):
        for t, frame in enumerate(frames):
            before, moved_before, faulted_before = dict(model.stage_seconds), sum(moved.values()), faulted_bytes()
            model(frame)
            if tally is not None and t > 0:
                for stage in STAGES:
                    tally.seconds[stage] += model.stage_seconds[stage] - before[stage]
                tally.frames += 1
                tally.executed += float(model.last_execution_fraction)
                tally.movements += sum(moved.values()) - moved_before
                tally.faulted += faulted_bytes() - faulted_before


def run_config(h: int, w: int, block: int, nets: list[str], args: argparse.Namespace) -> dict[str, Tally]:
    network = build_model(RunnerConfig(), read_state_dict(SYNTHETIC_CHECKPOINT), torch.device("cpu"), torch.float32)
    models = {net: BlockCopyModel(network, BlockCopySettings(block_size=block, block_target=args.target,
                                                             block_policy_net=net)) for net in nets}
    for frames in frame_batches(args.warmup_clips, args.clip_length, WARMUP_FIRST_CLIP, h, w):
        for model in models.values():
            run_clip(model, frames, None)
    tallies = {net: Tally() for net in nets}
    static = 0.0
    with torch.no_grad():
        for frames in frame_batches(args.clips, args.clip_length, 0, h, w):
            for net, model in models.items():
                run_clip(model, frames, tallies[net])
            for frame in frames[1:]:
                start = time.perf_counter()
                network(frame)
                static += time.perf_counter() - start
        static_macs = count_macs(network, frames[0])[1]
    for net, model in models.items():
        tallies[net].seconds["static"] = static
        print(f"{net}: policy network {model.last_policy_macs / 1e9:.3f} GMACs per frame "
              f"({100 * model.last_policy_macs / static_macs:.1f}% of static {static_macs / 1e9:.2f})")
    return tallies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.benchmark --suite policy",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=parse_config, default=[(512, 1024, 64), (1024, 2048, 128)],
                        help="HxW@block entries (default: 512x1024@64 1024x2048@128)")
    parser.add_argument("--nets", nargs="+", choices=POLICY_NETS, default=list(POLICY_NETS),
                        help="policy networks (block_policy_net) to compare")
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--warmup-clips", type=int, default=4, help="clips the policies learn on, untimed")
    parser.add_argument("--clips", type=int, default=2, help="timed clips (every frame after a clip's first)")
    parser.add_argument("--clip-length", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for h, w, block in args.configs:
        print(f"\n## {h}x{w}, block {block}, target {args.target}, {args.threads} threads")
        tallies = run_config(h, w, block, args.nets, args)
        print("| policy net | policy forward | network | of it block movements | reward + update | total | static "
              "| FPS ratio | executed | faulted in |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for net, tally in tallies.items():
            total = sum(tally.per_frame(stage) for stage in STAGES)
            frames = max(tally.frames, 1)
            policy, network, update = (f"{tally.per_frame(stage):.3f} s" for stage in STAGES)
            print(f"| {net} | {policy} | {network} | {1000 * tally.movements / frames:.1f} ms | {update} | "
                  f"{total:.3f} s | {tally.per_frame('static'):.3f} s | {tally.per_frame('static') / total:.2f}x | "
                  f"{tally.executed / frames:.3f} | {tally.faulted / frames / 2**20:.1f} MB |")
