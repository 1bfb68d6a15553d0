"""Reports of a run: what a clip gives back (``results``), the Parquet layout (``schema``), writing it
(``writer``), reading it back (``reader``), and comparing runs (``analysis``, ``tables``, ``plots``, ``cli``: what
``python -m jobs.report`` prints and draws)."""

from .reader import aggregate_audit, aggregate_clips, read_summary, read_table
from .results import ClipResult, FrameResult
from .schema import CLIPS_SCHEMA, FRAMES_SCHEMA, SUMMARY_FILE, SUMMARY_SCHEMA, summary_row
from .writer import RunWriter

__all__ = [
    "CLIPS_SCHEMA", "FRAMES_SCHEMA", "SUMMARY_FILE", "SUMMARY_SCHEMA", "ClipResult", "FrameResult", "RunWriter",
    "aggregate_audit", "aggregate_clips", "read_summary", "read_table", "summary_row",
]
