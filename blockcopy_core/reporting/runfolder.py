"""Opening a run folder for a job, before any compute: writable, locked, one run per folder, resumed only with the
same setup, and made whole for the resume (docs/reports.md, "One run per folder")."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from .cleanup import clear_debris, drop_clips
from .errors import RunFolderError
from .lock import RunLock
from .manifest import Manifest, differences
from .parts import read_parts, scan
from .schema import LOCK_FILE, MANIFEST_FILE, SUMMARY_FILE, TABLES

log = logging.getLogger("blockcopy")
SHOWN_ENTRIES = 5  # entries named when refusing a folder that is not empty


class RunFolder:
    """A run folder held by one job, locked until ``close``: the run's manifest and the clips recorded ok."""

    def __init__(self, path: Path, manifest: Manifest, done: set[str], lock: RunLock):
        self.path, self.manifest, self.done, self._lock = path, manifest, done, lock

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def complete(self) -> bool:
        """Every clip recorded ok and the summary written: a resume has nothing to do."""
        return not (self.manifest.clips.keys() - self.done) and (self.path / SUMMARY_FILE).is_file()

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run(report_dir: str | os.PathLike, manifest: Manifest, resume: bool) -> RunFolder:
    """Claim ``report_dir`` for the run ``manifest`` describes, or raise a RunFolderError saying why not.

    A new run needs a new or empty folder; ``resume`` needs the same settings, code and clip list as recorded (and
    the same files for the clips recorded ok), then clears the debris of a crash and drops the rows of failed
    clips, which run again. The folder is checked writable and locked first; the manifest is written last.
    """
    path = Path(report_dir)
    if resume:
        Manifest.read(path)  # a folder that is no run is refused before anything is created in it
    check_writable(path)
    lock = RunLock(path)
    lock.acquire()
    try:
        if resume:
            manifest, done = _prepare_resume(path, manifest)
        else:
            _refuse_used(path)
            done = set()
        manifest.write(path)
        for table in TABLES:
            (path / table).mkdir(exist_ok=True)
    except BaseException:
        lock.release()
        raise
    return RunFolder(path, manifest, done, lock)


def check_writable(path: Path) -> None:
    """Create ``path`` and write and remove a file in it, so an unusable report folder stops the job at once."""
    probe = path / f".write-probe-{uuid.uuid4().hex[:8]}"
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"the report folder {path} is a file: pass a new or empty folder as --report-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(f"cannot write the report to {path} ({exc.strerror or exc}): pass a writable "
                             "--report-dir") from exc


def _refuse_used(path: Path) -> None:
    used = sorted(entry.name for entry in path.iterdir() if entry.name != LOCK_FILE)
    if MANIFEST_FILE in used:
        if _recorded_nothing(path, used):
            # It stopped before its first batch (a bad checkpoint, no Ray cluster): nothing of it can mix with ours.
            log.info("%s holds a run that recorded nothing: a new run takes its place", path)
            return
        raise RunFolderError(f"{path} already holds a run: continue it with --resume, or pass another --report-dir "
                             "(a new or empty folder)")
    if used:
        names = ", ".join(used[:SHOWN_ENTRIES]) + (", ..." if len(used) > SHOWN_ENTRIES else "")
        raise RunFolderError(f"{path} is not empty ({names}) and holds no run: pass a new or empty --report-dir")


def _recorded_nothing(path: Path, used: list[str]) -> bool:
    """Whether the folder holds only a manifest and empty ``clips/`` and ``frames/``."""
    return set(used) <= {MANIFEST_FILE, *TABLES} and not any(
        any((path / table).iterdir()) for table in TABLES if (path / table).is_dir())


def _prepare_resume(path: Path, manifest: Manifest) -> tuple[Manifest, set[str]]:
    """Check ``manifest`` against the recorded one, then make the folder whole: returns the manifest to write
    (the recorded run's id) and the clips recorded ok."""
    recorded = Manifest.read(path)
    found = scan(path, full=True)
    rows = read_parts(path, "clips", found.committed).to_pylist()
    done = {r["clip_id"] for r in rows if r["phase"] == "eval" and r["status"] == "ok"}
    problems = differences(recorded, manifest, done)
    if problems:
        raise RunFolderError(f"cannot resume {path} with other settings than it was run with ({'; '.join(problems)})"
                             ": resume with the recorded ones, or start a new run in another --report-dir")
    clear_debris(path, found)
    retried = {r["clip_id"] for r in rows if r["phase"] == "eval" and r["status"] != "ok"} - done
    drop_clips(path, found.committed, retried)
    if manifest.clips.keys() - done:
        (path / SUMMARY_FILE).unlink(missing_ok=True)  # running again: the summary comes back when it ends
    return manifest.continued(recorded), done
