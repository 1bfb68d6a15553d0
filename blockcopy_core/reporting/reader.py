"""Reading a run folder back: its clip and frame rows, its summary, and the figures aggregated from clip rows."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..metrics import ConfusionMatrix
from .parts import read_parts, scan
from .schema import CONFIG_KEY, SUMMARY_FILE

log = logging.getLogger("blockcopy")


def read_table(report_dir: str | os.PathLike, name: str) -> pa.Table:
    """The ``clips`` or ``frames`` rows of the committed batches of a run folder (an empty table when there are
    none). Unfinished writes and frames of uncommitted batches are ignored, damaged batches skipped with a warning
    (``parts``), so a crashed run reads as the batches it finished."""
    found = scan(report_dir)
    for part, problem in found.damaged.items():
        log.warning("%s: skipping the damaged batch %s: %s", report_dir, part, problem)
    return read_parts(report_dir, name, found.committed)


def read_config(report_dir: str | os.PathLike) -> dict:
    """The run configuration stored with the first committed batch of a run folder ({} before its first batch)."""
    committed = scan(report_dir).committed
    if not committed:
        return {}
    metadata = pq.read_schema(Path(report_dir) / "clips" / committed[0]).metadata or {}
    return json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else {}


def aggregate_clips(clips: pa.Table, num_classes: int = 19) -> tuple[dict, ConfusionMatrix]:
    """Evaluation-phase figures from clip rows: counts, mIoU of summed confusions, frame-weighted means."""
    rows = [r for r in clips.to_pylist() if r["phase"] == "eval"]
    ok = [r for r in rows if r["status"] == "ok"]
    confusion = ConfusionMatrix(num_classes)
    for r in ok:
        if r["confusion"]:
            confusion.merge(ConfusionMatrix.from_flat(r["confusion"], num_classes))
    frames = np.array([r["num_frames"] for r in ok], dtype=np.float64)

    def frame_mean(column: str) -> float:
        return float(np.dot(frames, [r[column] for r in ok]) / frames.sum()) if frames.sum() else float("nan")

    compute_s = sum(r["compute_s"] for r in ok)
    size = next(((r["height"], r["width"]) for r in ok), (0, 0))
    figures = {
        "height": size[0], "width": size[1],
        "num_clips": len(rows), "num_clips_failed": len(rows) - len(ok), "num_frames": int(frames.sum()),
        "mean_iou": confusion.mean_iou(), "gmacs_per_frame": frame_mean("gmacs_per_frame"),
        "policy_gmacs_per_frame": frame_mean("policy_gmacs_per_frame"), "exec_fraction": frame_mean("exec_fraction"),
        "fps_per_actor": frames.sum() / compute_s if compute_s > 0 else float("nan"),
    }
    return figures, confusion


def aggregate_audit(frames: pa.Table) -> dict:
    """Means of the fidelity audit over the audited evaluation frames (NaN when none was audited).

    Frames written without an audit hold NaN, and parts from before the audit columns existed read as null.
    """
    rows = [r for r in frames.to_pylist() if r["phase"] == "eval" and r["dense_agreement"] is not None
            and not math.isnan(r["dense_agreement"])]
    return {
        "num_frames_audited": len(rows),
        "dense_agreement": float(np.mean([r["dense_agreement"] for r in rows])) if rows else math.nan,
        "dense_kl": float(np.mean([r["dense_kl"] for r in rows])) if rows else math.nan,
    }


def read_summary(report_dir: str | os.PathLike) -> dict:
    """The summary row of a run as a dict (``config`` decoded)."""
    path = Path(report_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{report_dir} has no {SUMMARY_FILE}: not a finished run")
    row = pq.read_table(path).to_pylist()[0]
    row["config"] = json.loads(row["config"])
    return row
