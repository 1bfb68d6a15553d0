"""Parquet reports of a run: one summary row with the run's configuration as JSON text and metadata."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SUMMARY_FILE = "summary.parquet"


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


def write_summary(report_dir: str | os.PathLike, row: dict, config: dict) -> Path:
    """Write ``row`` (plus ``config`` as JSON text) as the one-row ``summary.parquet`` of a run.

    The configuration also goes into the file's key-value metadata, so tools that only read the schema see it.
    """
    path = Path(report_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    config_json = json.dumps(config, sort_keys=True, default=str)
    table = pa.Table.from_pylist([{**row, "config": config_json}])
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"blockcopy.config": config_json})
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_summary(report_dir: str | os.PathLike) -> dict:
    """The summary row of a run as a dict (``config`` decoded)."""
    path = Path(report_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{report_dir} has no {SUMMARY_FILE}: not a finished run")
    row = pq.read_table(path).to_pylist()[0]
    row["config"] = json.loads(row["config"])
    return row
