"""The layout of a run folder: its files, the columns of each table, and the summary row.

A run folder holds ``manifest.json`` (what the run is: its id, settings, clips and code), ``clips/`` and
``frames/`` (Parquet datasets: one part file per finished batch of clips, the same name in both), ``summary.parquet``
(one row) and, for the learned policy, its final state in ``policy.pt``; ``run.lock`` while a job writes it and
``quarantine/`` for damaged part files moved aside by a resume. The run configuration (the job's flags) is stored
as JSON text in the summary's ``config`` column and in every file's key-value metadata under ``CONFIG_KEY``.
docs/reports.md explains each file and column.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

SUMMARY_FILE = "summary.parquet"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "run.lock"
QUARANTINE_DIR = "quarantine"
TABLES = ("clips", "frames")  # folders of part files; a batch's clips part, written last, commits it
POLICY_FILE = "policy.pt"  # the learned policy's state at the end of the run (rl_semseg only)
WARMUP_FILE = "warmup.pt"  # the learned policy's warm-up so far: batches done and its state (rl_semseg)
CONFIG_KEY = b"blockcopy.config"

CLIPS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("clip_id", pa.string()), ("phase", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("actor", pa.string()), ("node", pa.string()), ("device", pa.string()),
    ("num_frames", pa.int32()), ("height", pa.int32()), ("width", pa.int32()),
    ("exec_fraction", pa.float64()), ("gmacs_per_frame", pa.float64()),
    ("policy_gmacs_per_frame", pa.float64()), ("compute_s", pa.float64()), ("wall_s", pa.float64()),
    ("confusion", pa.list_(pa.int64())), ("peak_rss_mb", pa.float64()), ("video", pa.string()),
    ("segment", pa.int32()), ("start_frame", pa.int64()), ("source_fps", pa.float64()), ("decode_s", pa.float64()),
])
FRAMES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("clip_id", pa.string()), ("phase", pa.string()), ("frame_index", pa.int32()),
    ("name", pa.string()), ("exec_fraction", pa.float64()), ("gmacs", pa.float64()),
    ("policy_gmacs", pa.float64()), ("latency_ms", pa.float64()), ("dense_agreement", pa.float64()),
    ("dense_kl", pa.float64()), ("video", pa.string()), ("video_frame", pa.int64()),
])
VERSIONED_LIBRARIES = ("python", "torch", "numpy", "pyarrow", "ray")
SUMMARY_SCHEMA = pa.schema([
    # settings (from the run configuration)
    ("run_id", pa.string()), ("policy", pa.string()), ("backbone", pa.string()), ("block_size", pa.int64()),
    ("block_target", pa.float64()),
    # figures of the evaluation clips
    ("height", pa.int64()), ("width", pa.int64()), ("num_clips", pa.int64()), ("num_clips_failed", pa.int64()),
    ("num_frames", pa.int64()), ("mean_iou", pa.float64()), ("gmacs_per_frame", pa.float64()),
    ("policy_gmacs_per_frame", pa.float64()), ("exec_fraction", pa.float64()), ("fps_per_actor", pa.float64()),
    ("num_frames_audited", pa.int64()), ("dense_agreement", pa.float64()), ("dense_kl", pa.float64()),
    # the run as a whole
    ("fps", pa.float64()), ("num_actors", pa.int64()), ("wall_s", pa.float64()), ("data", pa.string()),
    ("checkpoint", pa.string()), ("checkpoint_sha256", pa.string()), ("git_commit", pa.string()),
    *((f"version_{name}", pa.string()) for name in VERSIONED_LIBRARIES),
    ("config", pa.string()),
])


def settings_columns(config: dict[str, Any]) -> dict[str, Any]:
    """The summary's setting columns, from the run configuration."""
    return {"run_id": config.get("run_id", ""), "policy": config.get("block_policy", ""),
            "backbone": config.get("model_backbone", ""), "block_size": config.get("block_size"),
            "block_target": config.get("block_target"), "data": config.get("data", ""),
            "checkpoint": config.get("model_checkpoint") or "",
            "checkpoint_sha256": config.get("model_checkpoint_sha256") or ""}


def summary_row(config: dict[str, Any], figures: dict[str, Any], **run: Any) -> dict[str, Any]:
    """The one summary row: settings from ``config``, the evaluation ``figures`` (clip aggregates and audit
    means) and ``run``-wide facts (fps, num_actors, wall_s, git_commit, version_*); a column not given is None.
    The keys and their order are SUMMARY_SCHEMA's, so the job and the report tool cannot drift apart."""
    values = {**settings_columns(config), **figures, **run,
              "config": json.dumps(config, sort_keys=True, default=str)}
    unknown = sorted(set(values) - set(SUMMARY_SCHEMA.names))
    if unknown:
        raise KeyError(f"not summary columns: {unknown}")
    return {name: values.get(name) for name in SUMMARY_SCHEMA.names}
