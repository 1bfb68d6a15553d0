"""The ``python -m jobs.report`` command: its flags, and printing the tables and drawing the plots asked for."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import plots
from .analysis import CLIP_ORDERS, NoCommonClipsError, NotARunError
from .tables import FORMATS, build_sections, render


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.report",
        description="Compare evaluation runs (folders written by jobs.evaluate --report-dir): accuracy, compute "
                    "and speed per run, differences against a baseline, per-class IoU, worst clips, plots.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (finished or in progress); files among them (a plot or table written "
                             "beside the runs, matched by runs/*) are skipped with a warning")
    parser.add_argument("--baseline", metavar="RUN_DIR",
                        help="also show each run's difference against this run: mIoU points, GMACs and FPS ratios")
    parser.add_argument("--per-class", action="store_true", help="the 19 class IoUs of every run side by side")
    parser.add_argument("--clips", choices=CLIP_ORDERS,
                        help="each run's worst clips: lowest mIoU (iou) or highest execution fraction (exec)")
    parser.add_argument("--common-clips", action="store_true",
                        help="compare the runs on the evaluation clips they all recorded: figures recomputed from "
                             "those clips (FPS unknown for a run that has more)")
    parser.add_argument("--limit", type=int, default=10, help="clips per run shown by --clips")
    parser.add_argument("--videos", action="store_true",
                        help="one row per video of runs over video files (--video): segments, frames, execution "
                             "fraction, GMACs, decode time, peak memory")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="csv: one block per table, separated by an empty line; json: one object of tables")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="plot mIoU against GMACs per frame (Pareto front dashed) and FPS per run")
    parser.add_argument("--plot-clips", metavar="FILE.png",
                        help="plot the per-clip distribution of execution fraction and mIoU of every run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.limit < 1:
        print(f"error: --limit must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    folders = [path for path in args.runs if not _skipped(path)]
    if not folders and args.baseline is None:
        print("error: no run folder among the arguments", file=sys.stderr)
        return 2
    try:
        sections, notes, runs = build_sections(folders, args.baseline, args.per_class, args.clips, args.limit,
                                               args.common_clips, args.videos)
        text = render(sections, notes, args.format)
        if args.plot:
            plots.plot_runs(runs, args.plot)
        if args.plot_clips:
            plots.plot_clips(runs, args.plot_clips)
    except (NotARunError, NoCommonClipsError, ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    if args.format == "csv" and notes:
        # csv output has no place for notes; say them where a redirected stdout does not catch them.
        print("\n".join(notes), file=sys.stderr)
    return 0


def _skipped(path: str) -> bool:
    """Whether ``path`` is a file, not a folder: most likely a plot or table of an earlier report that a glob such
    as ``runs/*`` matched. Said on stderr; a missing path or a folder that is not a run is an error later."""
    if Path(path).exists() and not Path(path).is_dir():
        print(f"warning: skipping {path}: a file, not a run folder", file=sys.stderr)
        return True
    return False
