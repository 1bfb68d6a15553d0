"""Durable file writes: a hidden temp file beside the target, fsync, rename, fsync of the folder.

A reader sees a file whole or not at all, and a crash leaves at most a ``.tmp`` file behind (which every reader
of a run folder ignores and a resume removes). Writing is split into ``stage`` and ``publish`` so that several
files can be written first and then renamed one right after the other (a batch's frames and clips parts).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def stage(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a hidden temp file beside ``path`` through ``write``, fsync it, and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def publish(*staged: tuple[Path, Path]) -> None:
    """Rename staged files to their paths, given as ``(temp, path)`` pairs, in this order, one right after the
    other (each atomic: it replaces any file there); then make the renames durable."""
    for tmp, path in staged:
        os.replace(tmp, path)
    for folder in dict.fromkeys(path.parent for _, path in staged):
        fsync_folder(folder)


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``stage`` then ``publish``: ``path`` holds its old content or the whole new one, never a part."""
    publish((stage(path, write), path))


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename or unlink in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
