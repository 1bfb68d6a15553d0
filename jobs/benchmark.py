"""Benchmarks: ``python -m jobs.benchmark [--suite engine|accuracy|policy|video] [suite flags]``.

- ``engine`` (default): the block-sparse engine against the static SwiftNet, time and MACs per frame
  (``blockcopy_core/benchmarks/engine.py``);
- ``accuracy``: static, random and learned policies through the real evaluation job on a fixed evaluation split:
  mIoU, GMACs, FPS, a results table and a Pareto plot (``blockcopy_core/benchmarks/accuracy.py``);
- ``policy``: the learned policy's networks, seconds per frame of each stage against static, and their MACs
  (``blockcopy_core/benchmarks/policy.py``);
- ``video``: decoding a video file against the model, per frame (``blockcopy_core/benchmarks/video.py``).

``python -m jobs.benchmark --suite NAME --help`` lists a suite's flags.
"""

from __future__ import annotations

import argparse
import sys

from blockcopy_core.allocator import keep_freed_memory
from blockcopy_core.benchmarks import accuracy, engine, policy, video

SUITES = {"engine": engine.main, "accuracy": accuracy.main, "policy": policy.main, "video": video.main}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.benchmark", description=__doc__.splitlines()[0],
                                     add_help=False)
    parser.add_argument("--suite", choices=SUITES)
    args, rest = parser.parse_known_args(argv)
    if args.suite is None and {"-h", "--help"} & set(rest):
        print(__doc__.strip())
        return 0
    keep_freed_memory()  # as the job's own processes do (build_runner)
    return SUITES[args.suite or "engine"](rest) or 0


if __name__ == "__main__":
    sys.exit(main())
