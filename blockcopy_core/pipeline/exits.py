"""How the evaluation job ends: its exit statuses, the refusal of bad input before compute, and SIGTERM handled
like Ctrl-C (docs/reliability.md)."""

from __future__ import annotations

import shlex
import signal
from enum import IntEnum
from types import FrameType


class ExitStatus(IntEnum):
    OK = 0  # every clip ran
    CLIPS_FAILED = 1  # the run completed and wrote its report, but some clips failed (their rows say why)
    REFUSED = 2  # bad usage or input, found before any compute: nothing ran, nothing was written
    ABORTED = 3  # interrupted, crashed or could not write: the clips recorded so far stay, --resume continues


class Refused(Exception):
    """An argument or input the job cannot use, found before any compute; the message is one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the job stops as on Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


def stop_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread. ``ray.init`` installs a handler of its own that
    exits at once (leaving Ray's processes to die with a C++ abort), so call this again after connecting to Ray."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def resume_command(argv: list[str], report_dir: str) -> str:
    """The command line that continues this run: the same arguments plus ``--resume --report-dir``."""
    extra = [] if "--resume" in argv else ["--resume"]
    if not any(arg == "--report-dir" or arg.startswith("--report-dir=") for arg in argv):
        extra += ["--report-dir", report_dir]
    return shlex.join(["python", "-m", "jobs.evaluate", *argv, *extra])
