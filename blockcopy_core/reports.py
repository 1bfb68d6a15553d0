"""Parquet reports of a run, written incrementally so that a crash keeps every finished clip.

A run folder holds ``clips/`` and ``frames/`` (Parquet datasets: one part file per finished batch of clips)
and ``summary.parquet`` (one row, written at the end). The run configuration is stored as JSON text in the
summary's ``config`` column and in every file's key-value metadata.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .metrics import ConfusionMatrix
from .runner import ClipResult

SUMMARY_FILE = "summary.parquet"
CONFIG_KEY = b"blockcopy.config"

CLIPS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("clip_id", pa.string()), ("phase", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("actor", pa.string()), ("node", pa.string()), ("device", pa.string()),
    ("num_frames", pa.int32()), ("height", pa.int32()), ("width", pa.int32()),
    ("exec_fraction", pa.float64()), ("gmacs_per_frame", pa.float64()),
    ("policy_gmacs_per_frame", pa.float64()), ("compute_s", pa.float64()), ("wall_s", pa.float64()),
    ("confusion", pa.list_(pa.int64())),
])
FRAMES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("clip_id", pa.string()), ("phase", pa.string()), ("frame_index", pa.int32()),
    ("name", pa.string()), ("exec_fraction", pa.float64()), ("gmacs", pa.float64()),
    ("policy_gmacs", pa.float64()), ("latency_ms", pa.float64()), ("dense_agreement", pa.float64()),
    ("dense_kl", pa.float64()),
])


def library_versions() -> dict[str, str]:
    import numpy
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
                "pyarrow": pa.__version__}
    try:
        import ray

        versions["ray"] = ray.__version__
    except ImportError:
        pass
    return versions


def git_commit(repo: str | os.PathLike = ".") -> str:
    """The checked-out commit of ``repo`` (with ``+dirty`` for local changes), or "" outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def _write_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class ReportWriter:
    """Appends finished clips to ``clips/`` and ``frames/`` of a run folder, one part file per call."""

    def __init__(self, report_dir: str | os.PathLike, run_id: str, config: dict):
        self.report_dir = Path(report_dir)
        self.run_id = run_id
        self.metadata = {CONFIG_KEY: json.dumps(config, sort_keys=True, default=str)}

    def append(self, results: Iterable[ClipResult]) -> None:
        results = list(results)
        if not results:
            return
        clips = [{
            "run_id": self.run_id, "clip_id": r.clip_id, "phase": r.phase, "status": r.status, "error": r.error,
            "actor": r.actor, "node": r.node, "device": r.device, "num_frames": r.num_frames,
            "height": r.height, "width": r.width, "exec_fraction": r.exec_fraction,
            "gmacs_per_frame": r.gmacs_per_frame,
            "policy_gmacs_per_frame": r.policy_gmacs_per_frame, "compute_s": r.compute_s, "wall_s": r.wall_s,
            "confusion": r.confusion or [],
        } for r in results]
        frames = [{
            "run_id": self.run_id, "clip_id": r.clip_id, "phase": r.phase, "frame_index": f.frame_index,
            "name": f.name, "exec_fraction": f.exec_fraction, "gmacs": f.gmacs, "policy_gmacs": f.policy_gmacs,
            "latency_ms": f.latency_ms, "dense_agreement": f.dense_agreement, "dense_kl": f.dense_kl,
        } for r in results for f in r.frames]
        part = f"part-{uuid.uuid4().hex}.parquet"
        # Frames first: the clips part commits the batch, so a crash in between leaves no half-recorded clip
        # counted as done (read_table ignores frames parts without their clips part).
        _write_atomically(pa.Table.from_pylist(frames, FRAMES_SCHEMA).replace_schema_metadata(self.metadata),
                          self.report_dir / "frames" / part)
        _write_atomically(pa.Table.from_pylist(clips, CLIPS_SCHEMA).replace_schema_metadata(self.metadata),
                          self.report_dir / "clips" / part)

    def write_summary(self, row: dict, config: dict) -> Path:
        return write_summary(self.report_dir, row, config)


def read_table(report_dir: str | os.PathLike, name: str) -> pa.Table:
    """All part files of ``clips`` or ``frames`` in a run folder (an empty table when there are none)."""
    schema = {"clips": CLIPS_SCHEMA, "frames": FRAMES_SCHEMA}[name]
    folder = Path(report_dir) / name
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    # A part's clip rows are written last and commit it: frames of a batch interrupted before that are ignored.
    parts = [p for p in parts if (Path(report_dir) / "clips" / p.name).is_file()]
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(p, schema=schema) for p in parts)


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


def write_summary(report_dir: str | os.PathLike, row: dict, config: dict) -> Path:
    """Write ``row`` (plus ``config`` as JSON text) as the one-row ``summary.parquet`` of a run."""
    path = Path(report_dir) / SUMMARY_FILE
    config_json = json.dumps(config, sort_keys=True, default=str)
    table = pa.Table.from_pylist([{**row, "config": config_json}])
    _write_atomically(table.replace_schema_metadata({CONFIG_KEY: config_json}), path)
    return path


def read_summary(report_dir: str | os.PathLike) -> dict:
    """The summary row of a run as a dict (``config`` decoded)."""
    path = Path(report_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{report_dir} has no {SUMMARY_FILE}: not a finished run")
    row = pq.read_table(path).to_pylist()[0]
    row["config"] = json.loads(row["config"])
    return row
