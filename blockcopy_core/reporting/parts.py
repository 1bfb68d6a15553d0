"""The part files of a run folder: which batches count, and what a crash or a bad disk left behind.

A batch is a frames part and a clips part of the same name; it counts (is *committed*) when both are there and
read as Parquet. Anything else in ``clips/`` and ``frames/`` is debris: unfinished writes (``*.tmp``), frames parts
whose clips part never came (a crash between the two), and *damaged* batches (a part unreadable, or a clips part
without its frames part). Readers skip the debris; a resume clears it away (``cleanup``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .files import TEMP_SUFFIX
from .schema import CLIPS_SCHEMA, FRAMES_SCHEMA

log = logging.getLogger("blockcopy")
SCHEMAS = {"clips": CLIPS_SCHEMA, "frames": FRAMES_SCHEMA}


@dataclass
class PartScan:
    """The batches of a run folder, sorted by name, and its debris."""

    committed: list[str] = field(default_factory=list)  # part file names of whole, readable batches
    damaged: dict[str, str] = field(default_factory=dict)  # part file name -> what is wrong with the batch
    orphans: list[Path] = field(default_factory=list)  # frames parts without a clips part
    temps: list[Path] = field(default_factory=list)  # unfinished writes


def scan(report_dir: str | os.PathLike, full: bool = False) -> PartScan:
    """Sort the part files of ``report_dir``: a part is readable when its Parquet footer reads (``full``: when the
    whole file reads with its table's schema, as a resume checks before it trusts a batch)."""
    root = Path(report_dir)
    names = {table: _parts(root / table) for table in SCHEMAS}
    found = PartScan(orphans=[root / "frames" / name for name in sorted(names["frames"] - names["clips"])],
                     temps=sorted(p for table in SCHEMAS if (root / table).is_dir()
                                  for p in (root / table).glob(f"*{TEMP_SUFFIX}")))
    for name in sorted(names["clips"]):
        problem = _problem(root / "clips" / name, full) or (
            _problem(root / "frames" / name, full) if name in names["frames"] else "its frames part is missing")
        if problem:
            found.damaged[name] = problem
        else:
            found.committed.append(name)
    return found


def read_parts(report_dir: str | os.PathLike, table: str, names: list[str]) -> pa.Table:
    """The rows of ``table`` (``clips`` or ``frames``) in the named part files; a part that does not read is
    skipped with a warning (an empty table when none is left)."""
    schema = SCHEMAS[table]
    tables = []
    for name in names:
        path = Path(report_dir) / table / name
        try:
            tables.append(pq.read_table(path, schema=schema))
        except (OSError, pa.ArrowException) as exc:
            log.warning("skipping unreadable part file %s: %s: %s", path, type(exc).__name__, exc)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _parts(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.parquet")} if folder.is_dir() else set()


def _problem(path: Path, full: bool) -> str:
    """Why ``path`` is not a readable part file of its table ("" when it is)."""
    try:
        if full:
            pq.read_table(path, schema=SCHEMAS[path.parent.name])
        else:
            pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        return f"{path.parent.name}/{path.name} is unreadable ({type(exc).__name__}: {exc})"
    return ""
