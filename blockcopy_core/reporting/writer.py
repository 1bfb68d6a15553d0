"""Writing a run folder: clip and frame rows appended as each batch finishes (so a crash keeps every finished
clip), and the summary row at the end. The layout and columns are in ``schema``; every file is written durably
and atomically (``files``)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .files import publish, stage, write_atomically
from .results import ClipResult
from .schema import CLIPS_SCHEMA, CONFIG_KEY, FRAMES_SCHEMA, SUMMARY_FILE, SUMMARY_SCHEMA, VERSIONED_LIBRARIES

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages) holding blockcopy_core
SOURCE_PATTERNS = ("blockcopy_core/**/*.py", "jobs/*.py", "csrc/*.cpp", "csrc/*.cu")


def provenance(code: str) -> dict[str, str]:
    """The summary's run-wide facts about the code that ran: ``code`` (the manifest's ``code_version``) and the
    libraries' versions."""
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
                "pyarrow": pa.__version__, "ray": _ray_version()}
    return {"git_commit": code, **{f"version_{name}": versions[name] for name in VERSIONED_LIBRARIES}}


def _ray_version() -> str:
    """Ray's version, or "" where Ray is not installed (the library runs without it)."""
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return ""


def code_version() -> str:
    """The git commit of this package's checkout (``+dirty`` with local changes); outside a checkout (a pip
    install, or the working directory ``ray job submit`` uploads without ``.git``) ``source:`` and a digest of
    the package's source files, so a run still names the code it ran."""
    return git_commit(PACKAGE_ROOT) or f"source:{source_digest(PACKAGE_ROOT)}"


def source_digest(root: Path) -> str:
    """SHA-256 (12 hex digits) of the package's source files under ``root``: their paths and contents."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in SOURCE_PATTERNS for p in root.glob(pattern) if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


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


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically and durably."""
    write_atomically(path, lambda file: pq.write_table(table, file))


def _stage_parquet(table: pa.Table, path: Path) -> Path:
    return stage(path, lambda file: pq.write_table(table, file))


class RunWriter:
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
            "confusion": r.confusion or [], "peak_rss_mb": r.peak_rss_mb, "video": r.video, "segment": r.segment,
            "start_frame": r.start_frame, "source_fps": r.source_fps, "decode_s": r.decode_s,
        } for r in results]
        frames = [{
            "run_id": self.run_id, "clip_id": r.clip_id, "phase": r.phase, "frame_index": f.frame_index,
            "name": f.name, "exec_fraction": f.exec_fraction, "gmacs": f.gmacs, "policy_gmacs": f.policy_gmacs,
            "latency_ms": f.latency_ms, "dense_agreement": f.dense_agreement, "dense_kl": f.dense_kl,
            "video": r.video, "video_frame": f.video_frame,
        } for r in results for f in r.frames]
        part = f"part-{uuid.uuid4().hex}.parquet"
        frames_path, clips_path = self.report_dir / "frames" / part, self.report_dir / "clips" / part
        # Both parts are written and synced under temp names first, then renamed one right after the other, the
        # clips part last: it commits the batch, so a crash leaves the whole batch or none of it visible (at
        # worst, between the two renames, a frames part without its clips part, which readers ignore and a
        # resume removes).
        staged_frames = _stage_parquet(
            pa.Table.from_pylist(frames, FRAMES_SCHEMA).replace_schema_metadata(self.metadata), frames_path)
        staged_clips = _stage_parquet(
            pa.Table.from_pylist(clips, CLIPS_SCHEMA).replace_schema_metadata(self.metadata), clips_path)
        publish((staged_frames, frames_path), (staged_clips, clips_path))

    def write_summary(self, row: dict) -> Path:
        """Write the one-row ``summary.parquet`` (a row from ``schema.summary_row``)."""
        return write_summary(self.report_dir, row)


def write_summary(report_dir: str | os.PathLike, row: dict) -> Path:
    """Write ``row`` (from ``schema.summary_row``) as the one-row ``summary.parquet`` of a run."""
    path = Path(report_dir) / SUMMARY_FILE
    table = pa.Table.from_pylist([row], SUMMARY_SCHEMA)
    write_parquet(table.replace_schema_metadata({CONFIG_KEY: row["config"]}), path)
    return path
