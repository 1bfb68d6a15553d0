"""Compare evaluation runs: a table of their figures, per-class IoU, worst clips, and plots.

    python -m jobs.report runs/rn18_static runs/rn18_rl50                  # one row per run
    python -m jobs.report runs/* --baseline runs/rn18_static --per-class   # differences, class IoUs side by side
    python -m jobs.report runs/* --clips iou --limit 5 --format markdown   # each run's 5 worst clips by mIoU
    python -m jobs.report runs/* --plot tradeoff.png --plot-clips clips.png
    python -m jobs.report runs/* --common-clips                            # only the clips all runs evaluated

Runs still in progress (no summary.parquet yet) are read from their clip rows and marked incomplete; runs that
evaluated different clips get a warning. Files among the arguments (a plot written into runs/) are skipped with a
warning; a folder that is not a run is refused with exit status 2. See docs/reports.md for the tables and their
columns; the command is ``blockcopy_core.reporting.cli``.
"""

import sys

from blockcopy_core.reporting.cli import main

if __name__ == "__main__":
    sys.exit(main())
