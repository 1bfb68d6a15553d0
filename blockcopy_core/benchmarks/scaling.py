"""Throughput of the Ray job with 1 and with N actors on the same clips, side by side in one Ray session.

    python -m jobs.scaling --actors 1 2 --threads-per-actor 1 --num-clips 8 --res 256

Each configuration starts its actors, runs every clip once, and is timed from the first dispatch to the last
result (actor start-up excluded); the table gives frames per second and the speed-up over the first row.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..data import build_clips
from ..models import build_swiftnet
from ..pipeline import RunnerConfig
from ..pipeline.executor import import_ray_executor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads-per-actor", type=int, default=1)
    parser.add_argument("--num-clips", type=int, default=8)
    parser.add_argument("--clip-length", type=int, default=10)
    parser.add_argument("--res", type=int, default=256, help="synthetic frame height (width = 2 x res)")
    parser.add_argument("--backbone", default="resnet18")
    args = parser.parse_args(argv)

    ray_executor = import_ray_executor(local=True)
    ray_executor.connect(None, num_cpus=max(args.actors) * args.threads_per_actor)
    clips = build_clips("synthetic", clip_length=args.clip_length, num_clips=args.num_clips, seed=0,
                        height=args.res, width=2 * args.res)
    weights = build_swiftnet(args.backbone).state_dict()
    config = RunnerConfig(backbone=args.backbone, measure=False, device="cpu")
    rows = []
    for count in args.actors:
        executor = ray_executor.RayExecutor(config, weights, num_actors=count, cpus_per_actor=args.threads_per_actor)
        try:
            results = []
            start = time.perf_counter()
            executor.run_phase([[clip] for clip in clips], "eval", results.extend)
            seconds = time.perf_counter() - start
        finally:
            executor.close()
        frames = sum(r.num_frames for r in results)
        rows.append((count, frames, seconds, frames / seconds))
    print(f"SwiftNet-{args.backbone} static, {args.num_clips} clips x {args.clip_length} frames at "
          f"{args.res}x{2 * args.res}, {args.threads_per_actor} thread(s) per actor")
    print("| actors | frames | seconds | frames/s | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for count, frames, seconds, fps in rows:
        print(f"| {count} | {frames} | {seconds:.1f} | {fps:.2f} | {fps / rows[0][3]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
