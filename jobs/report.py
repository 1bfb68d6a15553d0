"""Compare evaluation runs: a table of their figures, per-class IoU, worst clips, and plots.

    python -m jobs.report runs/rn18_static runs/rn18_rl50                  # one row per run
    python -m jobs.report runs/* --baseline runs/rn18_static --per-class   # differences, class IoUs side by side
    python -m jobs.report runs/* --clips iou --limit 5 --format markdown   # each run's 5 worst clips by mIoU
    python -m jobs.report runs/* --plot tradeoff.png --plot-clips clips.png

Runs still in progress (no summary.parquet yet) are read from their clip rows and marked incomplete. A folder
that is not a run is refused with exit status 2. See docs/reports.md for the tables and their columns.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blockcopy_core.reporting.analysis import (
    CLIP_ORDERS,
    NotARunError,
    load_runs,
    notes,
    per_class_rows,
    run_rows,
    worst_clips,
)

FORMATS = ("table", "markdown", "csv", "json")


@dataclass(frozen=True)
class Column:
    """How a row key is shown in the table and markdown formats (csv and json use keys and raw values)."""

    header: str
    spec: str = ""  # format spec of numbers
    scale: float = 1.0


COLUMNS = {
    "run": Column("run"), "status": Column("status"), "policy": Column("policy"),
    "block_target": Column("target", ".2f"), "backbone": Column("backbone"), "block_size": Column("block"),
    "resolution": Column("resolution"), "clips_ok": Column("clips ok"), "clips_failed": Column("failed"),
    "frames": Column("frames"), "mean_iou": Column("mIoU", ".2f"), "gmacs_per_frame": Column("GMACs/frame", ".3f"),
    "fps": Column("FPS", ".2f"), "fps_per_actor": Column("FPS/actor", ".2f"), "exec_fraction": Column("exec", ".3f"),
    "dense_agreement": Column("dense agree %", ".2f", 100.0), "dense_kl": Column("dense KL", ".4f"),
    "delta_miou": Column("mIoU diff", "+.2f"), "gmacs_ratio": Column("GMACs ratio", ".3f"),
    "fps_ratio": Column("FPS ratio", ".2f"),
    "clip_id": Column("clip"), "actor": Column("actor"), "error": Column("error"), "class": Column("class"),
}


@dataclass
class Section:
    name: str  # json key
    title: str  # heading in table and markdown output
    rows: list[dict]
    columns: dict[str, Column]  # display of each row key

    @property
    def keys(self) -> list[str]:
        return list(self.rows[0]) if self.rows else []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.report",
        description="Compare evaluation runs (folders written by jobs.evaluate --report-dir): accuracy, compute "
                    "and speed per run, differences against a baseline, per-class IoU, worst clips, plots.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (finished or in progress)")
    parser.add_argument("--baseline", metavar="RUN_DIR",
                        help="also show each run's difference against this run: mIoU points, GMACs and FPS ratios")
    parser.add_argument("--per-class", action="store_true", help="the 19 class IoUs of every run side by side")
    parser.add_argument("--clips", choices=CLIP_ORDERS,
                        help="each run's worst clips: lowest mIoU (iou) or highest execution fraction (exec)")
    parser.add_argument("--limit", type=int, default=10, help="clips per run shown by --clips")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="csv: one block per table, separated by an empty line; json: one object of tables")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="plot mIoU against GMACs per frame (Pareto front dashed) and FPS per run")
    parser.add_argument("--plot-clips", metavar="FILE.png",
                        help="plot the per-clip distribution of execution fraction and mIoU of every run")
    return parser


def build_sections(args: argparse.Namespace) -> tuple[list[Section], list[str], list]:
    """The tables asked for, the notes on incomplete runs and failed clips, and the runs read."""
    paths: dict[Path, str] = {}  # each folder once, the baseline first
    for path in ([args.baseline] if args.baseline else []) + args.runs:
        paths.setdefault(Path(path).resolve(), path)
    runs = load_runs(list(paths.values()))
    baseline = runs[0] if args.baseline else None
    sections = [Section("runs", "Runs" + (f" (differences against {baseline.label})" if baseline else ""),
                        run_rows(runs, baseline), COLUMNS)]
    if args.per_class:
        columns = {"class": COLUMNS["class"], **{run.label: Column(run.label, ".2f") for run in runs}}
        sections.append(Section("per_class", "IoU per class (%)", per_class_rows(runs), columns))
    if args.clips:
        order = "lowest mIoU" if args.clips == "iou" else "highest execution fraction"
        sections.append(Section("clips", f"Worst clips per run: {order} first",
                                [{k: v for k, v in r.items() if k != "status"}
                                 for r in worst_clips(runs, args.clips, args.limit)], COLUMNS))
    return sections, notes(runs), runs


def _display(column: Column, value: object) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        text = format(value * column.scale, column.spec or "g")
        # A difference that rounds to zero reads as zero, not "-0.00".
        return text.replace("-", "+" if "+" in column.spec else "", 1) if float(text) == 0 else text
    return str(value)


def format_table(sections: list[Section], lines: list[str]) -> str:
    out = []
    for section in sections:
        keys, columns = section.keys, section.columns
        cells = [[columns[k].header for k in keys]] + [[_display(columns[k], row[k]) for k in keys]
                                                       for row in section.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(keys))]
        numeric = [all(_is_number(row[k]) for row in section.rows) for k in keys]
        out.append(section.title)
        for n, row in enumerate(cells):
            out.append("  ".join(c.rjust(w) if right else c.ljust(w)
                                 for c, w, right in zip(row, widths, numeric)).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        out.append("")
    return "\n".join(out + lines).rstrip() + "\n"


def format_markdown(sections: list[Section], lines: list[str]) -> str:
    out = []
    for section in sections:
        keys, columns = section.keys, section.columns
        out += [f"### {section.title}", "", "| " + " | ".join(columns[k].header for k in keys) + " |",
                "|" + "|".join("---:" if all(_is_number(r[k]) for r in section.rows) else "---" for k in keys) + "|"]
        out += ["| " + " | ".join(_display(columns[k], row[k]).replace("|", "\\|") for k in keys) + " |"
                for row in section.rows]
        out.append("")
    out += [f"- {line}" for line in lines]
    return "\n".join(out).rstrip() + "\n"


def format_csv(sections: list[Section], lines: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for n, section in enumerate(sections):
        if n:
            buffer.write("\n")
        keys = section.keys
        writer.writerow(keys)
        writer.writerows([["" if _missing(row[k]) else row[k] for k in keys] for row in section.rows])
    return buffer.getvalue()


def format_json(sections: list[Section], lines: list[str]) -> str:
    document = {section.name: [{k: None if _missing(v) else v for k, v in row.items()} for row in section.rows]
                for section in sections}
    document["notes"] = lines
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


FORMATTERS: dict[str, Callable[[list[Section], list[str]], str]] = {
    "table": format_table, "markdown": format_markdown, "csv": format_csv, "json": format_json,
}


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.limit < 1:
        print(f"error: --limit must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    try:
        sections, lines, runs = build_sections(args)
        if args.plot or args.plot_clips:
            from blockcopy_core.reporting import plots

            if args.plot:
                plots.plot_runs(runs, args.plot)
            if args.plot_clips:
                plots.plot_clips(runs, args.plot_clips)
    except (NotARunError, ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(FORMATTERS[args.format](sections, lines))
    if args.format == "csv" and lines:
        # csv output has no place for notes; say them where a redirected stdout does not catch them.
        print("\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
