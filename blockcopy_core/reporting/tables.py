"""The tables ``python -m jobs.report`` prints: which figures of ``analysis`` it shows, how, and in which format.

A ``Section`` is one table: raw rows (from ``analysis``) and how each row key is shown (``Column``: header, number
format, scale). ``render`` hands the sections to pandas: ``table`` and ``markdown`` get display strings (rounded,
scaled, ``-`` for missing), ``csv`` and ``json`` the raw values at full precision (missing: empty, ``null``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import analysis


@dataclass(frozen=True)
class Column:
    """How a row key is shown in the table and markdown formats (csv and json use keys and raw values)."""

    header: str
    spec: str = ""  # format spec of numbers
    scale: float = 1.0

    def show(self, value: object) -> str:
        """The cell text: numbers scaled and formatted, ``-`` for a missing value."""
        if _missing(value):
            return "-"
        if isinstance(value, float):
            text = format(value * self.scale, self.spec or "g")
            # A difference that rounds to zero reads as zero, not "-0.00".
            return text.replace("-", "+" if "+" in self.spec else "", 1) if float(text) == 0 else text
        return str(value)


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
    "video": Column("video"), "segments_ok": Column("segments ok"), "segments_failed": Column("failed"),
    "source_fps": Column("source fps", ".2f"), "decode_ms": Column("decode ms/frame", ".1f"),
    "peak_rss_mb": Column("peak RSS MB", ".0f"),
}


@dataclass
class Section:
    """One table of the report."""

    name: str  # json key
    title: str  # heading in table and markdown output
    rows: list[dict]
    columns: dict[str, Column]  # display of each row key

    def frame(self) -> pd.DataFrame:
        """The raw rows, one column per key (object dtype: integers stay integers beside missing values)."""
        return pd.DataFrame(self.rows, dtype=object)

    def shown(self) -> tuple[pd.DataFrame, list[str], list[str]]:
        """The rows as display strings, the headers, and each column's alignment (numbers to the right)."""
        raw = self.frame()
        columns = [self.columns.get(key, Column(key)) for key in raw.columns]
        cells = pd.DataFrame({key: raw[key].map(column.show) for key, column in zip(raw.columns, columns)})
        align = ["right" if all(map(_is_number, raw[key])) else "left" for key in raw.columns]
        return cells, [column.header for column in columns], align


def build_sections(
    paths: Sequence[str | os.PathLike], baseline: str | os.PathLike | None = None, per_class: bool = False,
    clips: str | None = None, limit: int = 10, common_clips: bool = False, videos: bool = False,
) -> tuple[list[Section], list[str], list[analysis.Run]]:
    """Read the runs and make the tables asked for: one row per run (with a baseline, which comes first, also the
    differences against it), optionally per-class IoU and each run's ``limit`` worst clips (``clips``: one of
    ``analysis.CLIP_ORDERS``), one row per video of video runs (``videos``); with ``common_clips``, every figure
    from the evaluation clips all runs share.
    Returns the tables, the notes (runs that evaluated different clips, incomplete runs, failed clips), and the
    runs."""
    unique: dict[Path, str | os.PathLike] = {}  # each folder once, the baseline first
    for path in ([baseline] if baseline is not None else []) + list(paths):
        unique.setdefault(Path(path).resolve(), path)
    runs = analysis.load_runs(list(unique.values()))
    notes = analysis.clip_set_notes(runs, common_clips) + analysis.notes(runs)  # of the runs as recorded
    if common_clips:
        runs = analysis.on_common_clips(runs)
    base = runs[0] if baseline is not None else None
    sections = [Section("runs", "Runs" + (f" (differences against {base.label})" if base else ""),
                        analysis.run_rows(runs, base), COLUMNS)]
    if per_class:
        columns = {"class": COLUMNS["class"], **{run.label: Column(run.label, ".2f") for run in runs}}
        sections.append(Section("per_class", "IoU per class (%)", analysis.per_class_rows(runs), columns))
    if clips:
        order = "lowest mIoU" if clips == "iou" else "highest execution fraction"
        rows = [{k: v for k, v in row.items() if k != "status"} for row in analysis.worst_clips(runs, clips, limit)]
        sections.append(Section("clips", f"Worst clips per run: {order} first", rows, COLUMNS))
    if videos:
        sections.append(Section("videos", "Videos", analysis.video_rows(runs), COLUMNS))
    return sections, notes, runs


def render(sections: list[Section], notes: list[str], fmt: str) -> str:
    """The sections in one of ``FORMATS``; the notes follow the tables, except in csv (which has no place for
    them: print them elsewhere)."""
    if fmt not in RENDERERS:
        raise ValueError(f"report format must be one of {FORMATS}, got {fmt!r}")
    return RENDERERS[fmt](sections, notes)


def _table(sections: list[Section], notes: list[str]) -> str:
    out = []
    for section in sections:
        cells, headers, align = section.shown()
        table = cells.to_markdown(index=False, headers=headers, tablefmt="simple", colalign=align,
                                  disable_numparse=True) if section.rows else "(none)"
        out += [section.title, table, ""]
    return "\n".join(out + notes).rstrip() + "\n"


def _markdown(sections: list[Section], notes: list[str]) -> str:
    out = []
    for section in sections:
        cells, headers, align = section.shown()
        # A "|" inside a cell would end it: escape it as GitHub's markdown reads it.
        table = cells.replace(r"\|", r"\\|", regex=True).to_markdown(
            index=False, headers=[h.replace("|", "\\|") for h in headers], colalign=align, disable_numparse=True,
        ) if section.rows else "(none)"
        out += [f"### {section.title}", "", table, ""]
    return "\n".join(out + [f"- {line}" for line in notes]).rstrip() + "\n"


def _csv(sections: list[Section], notes: list[str]) -> str:
    return "\n".join(section.frame().to_csv(index=False, lineterminator="\n") for section in sections)


def _json(sections: list[Section], notes: list[str]) -> str:
    document: dict[str, list] = {}
    for section in sections:
        raw = section.frame()
        document[section.name] = raw.where(raw.notna(), None).to_dict(orient="records")
    document["notes"] = notes
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[list[Section], list[str]], str]] = {
    "table": _table, "markdown": _markdown, "csv": _csv, "json": _json,
}
FORMATS = tuple(RENDERERS)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
