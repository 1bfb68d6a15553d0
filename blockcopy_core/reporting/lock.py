"""One job at a time per run folder: ``run.lock``, held while a job writes the folder.

The lock is an exclusive ``flock`` on ``DIR/run.lock``, which the kernel lets go when its process dies, and the
file says who holds it (pid, host, since when) for the message that refuses a second job. A lock file whose
``flock`` is free was left by a job that did not end cleanly: it is taken over, with a warning, when it names a
process of this host that is gone; one naming another host (whose process cannot be checked from here) or a live
process still refuses, saying which file to delete once that job is known to be gone.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .errors import RunFolderError
from .schema import LOCK_FILE

log = logging.getLogger("blockcopy")


class RunLock:
    """The lock of the run folder ``folder``: ``acquire`` or a RunFolderError, then ``release``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = self._lock_file()
        holder = _read(fd)
        if holder and not _gone(holder):
            os.close(fd)
            raise RunFolderError(f"{self._busy(holder)}; if no job writes it any more, delete {self.path}")
        if holder:
            log.warning("run %s: taking over the lock left by pid %s on host %s since %s (that process is gone)",
                        self.folder, holder.get("pid"), holder.get("host"), holder.get("since"))
        mine = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Deleted while still locked: a job that opened it meanwhile finds it gone (_same_file) and locks a new one.
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def _lock_file(self) -> int:
        """An open descriptor of the lock file, flock'ed; a RunFolderError when another process holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise RunFolderError(self._busy(holder)) from None
            if _same_file(fd, self.path):
                return fd
            os.close(fd)  # released and deleted while we opened it: lock the file there now

    def _busy(self, holder: dict) -> str:
        return (f"run {self.folder} is being written by pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} since {holder.get('since', '?')}")


def _read(fd: int) -> dict:
    """Who the lock file says holds it ({} when it is empty or unreadable)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _gone(holder: dict) -> bool:
    """Whether the process a free lock file names is known to be gone: on this host, and not running (or this
    very process, whose own jobs release their lock)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == os.getpid():
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
