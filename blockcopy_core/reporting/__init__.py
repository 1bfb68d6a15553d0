"""Reports of a run: the Parquet layout (``schema``), writing it (``writer``), reading it back (``results``), and
comparing runs (``analysis``, ``tables``, ``plots``: what ``python -m jobs.report`` prints and draws)."""

from .results import aggregate_audit, aggregate_clips, read_summary, read_table
from .schema import CLIPS_SCHEMA, FRAMES_SCHEMA, SUMMARY_FILE, SUMMARY_SCHEMA, summary_row
from .writer import RunWriter

__all__ = ["CLIPS_SCHEMA", "FRAMES_SCHEMA", "SUMMARY_FILE", "SUMMARY_SCHEMA", "RunWriter", "aggregate_audit",
           "aggregate_clips", "read_summary", "read_table", "summary_row"]
