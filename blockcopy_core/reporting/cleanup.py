"""Making a run folder whole before a resume, so that any Parquet reader (pandas reads every file of a folder)
sees each recorded row exactly once: debris removed, damaged batches moved to ``quarantine/``, and the rows of
clips about to be re-run dropped."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .files import fsync_folder
from .parts import PartScan
from .schema import QUARANTINE_DIR, TABLES
from .writer import write_parquet

log = logging.getLogger("blockcopy")


def clear_debris(report_dir: str | os.PathLike, found: PartScan) -> None:
    """Remove unfinished writes and frames parts of uncommitted batches, and move the files of damaged batches
    (``found`` by ``parts.scan``) into ``quarantine/``: their clips count as not recorded, so they run again."""
    root = Path(report_dir)
    for path in [*found.temps, *found.orphans]:
        path.unlink(missing_ok=True)
    if found.temps or found.orphans:
        log.info("%s: removed %d unfinished writes and %d frames parts of uncommitted batches", root,
                 len(found.temps), len(found.orphans))
    quarantine = root / QUARANTINE_DIR
    for name, problem in found.damaged.items():
        quarantine.mkdir(exist_ok=True)
        # The clips part first: without it the batch no longer counts, whatever a crash leaves next.
        for table in ("clips", "frames"):
            path = root / table / name
            if path.exists():
                os.replace(path, quarantine / f"{table}-{name}")
        log.warning("%s: moved the damaged batch %s to %s/ (%s); its clips will run again", root, name,
                    QUARANTINE_DIR, problem)
    for table in TABLES:
        if (root / table).is_dir():
            fsync_folder(root / table)


def drop_clips(report_dir: str | os.PathLike, parts: list[str], clip_ids: Collection[str]) -> None:
    """Take the rows of ``clip_ids`` out of the batches named in ``parts`` (each rewritten atomically; a batch left
    without clips is deleted), so a clip run again is never recorded twice."""
    root = Path(report_dir)
    dropped = pa.array(list(clip_ids), pa.string())
    for name in parts:
        clips = pq.read_table(root / "clips" / name)
        drop = pc.is_in(clips["clip_id"], value_set=dropped)
        if not pc.any(drop).as_py():
            continue
        if pc.all(drop).as_py():  # clips part first: it commits the batch
            (root / "clips" / name).unlink()
            (root / "frames" / name).unlink()
            continue
        # Frames first: in between, the old clips part still commits the batch and the dropped clips' frames
        # are simply gone (a failed clip has none).
        frames = pq.read_table(root / "frames" / name)
        frames_dropped = pc.is_in(frames["clip_id"], value_set=dropped)
        if pc.any(frames_dropped).as_py():
            write_parquet(frames.filter(pc.invert(frames_dropped)), root / "frames" / name)
        write_parquet(clips.filter(pc.invert(drop)), root / "clips" / name)
    for table in TABLES:
        if (root / table).is_dir():
            fsync_folder(root / table)
