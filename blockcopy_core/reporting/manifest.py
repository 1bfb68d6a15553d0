"""What a run is, written before it computes anything: ``manifest.json``.

It holds the run id, every setting that affects the rows (the job picks them; checkpoint files are named by their
SHA-256), the code version and the evaluation clips, each with a fingerprint of its files. A resume compares it
with what the job would run now and refuses any difference, so one folder never mixes results of two setups.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data import Clip
from .errors import RunFolderError
from .files import write_atomically
from .schema import MANIFEST_FILE

SHOWN_CLIPS = 5  # clip ids named in a difference before "and N more"


@dataclass(frozen=True)
class Manifest:
    """A run's identity: ``settings`` and ``code`` must match on resume, as must ``clips`` (id -> fingerprint of
    its files) for every clip already recorded."""

    run_id: str
    created: str
    code: str
    settings: dict[str, Any]
    clips: dict[str, str]

    @classmethod
    def create(cls, run_id: str, settings: dict[str, Any], clips: Iterable[Clip], code: str) -> Manifest:
        """The manifest of a run starting now (settings as JSON gives them back, so they compare equal)."""
        return cls(run_id, datetime.now(timezone.utc).isoformat(timespec="seconds"), code,
                   json.loads(json.dumps(settings, sort_keys=True, default=str)),
                   {clip.clip_id: clip_fingerprint(clip) for clip in clips})

    @classmethod
    def read(cls, report_dir: str | os.PathLike) -> Manifest:
        path = Path(report_dir) / MANIFEST_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise RunFolderError(f"cannot resume {report_dir}: it has no {MANIFEST_FILE}, so it is not a run "
                                 "folder (or one written before manifests existed); start a new run in an empty "
                                 "or new --report-dir") from None
        except (OSError, ValueError, TypeError) as exc:
            raise RunFolderError(f"cannot resume {report_dir}: its {MANIFEST_FILE} is unreadable "
                                 f"({type(exc).__name__}: {exc})") from exc

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    def write(self, report_dir: str | os.PathLike) -> None:
        """Write ``manifest.json`` (atomically; left untouched when it already says the same)."""
        path = Path(report_dir) / MANIFEST_FILE
        text = self.to_json()
        if not (path.is_file() and path.read_text() == text):
            write_atomically(path, lambda file: file.write(text.encode()))

    def continued(self, recorded: Manifest) -> Manifest:
        """This manifest as the continuation of ``recorded``: its run id and creation time, today's clip files."""
        return replace(self, run_id=recorded.run_id, created=recorded.created)


def differences(recorded: Manifest, now: Manifest, kept: set[str]) -> list[str]:
    """Each way ``now`` differs from ``recorded`` as "what: recorded -> now": settings, code, the clip list, and
    the files of the ``kept`` clips (those recorded ok; the others run again, from the files as they are now)."""
    found = [f"{key}: {_show(recorded.settings.get(key))} -> {_show(now.settings.get(key))}"
             for key in sorted(recorded.settings.keys() | now.settings.keys())
             if recorded.settings.get(key) != now.settings.get(key)]
    if recorded.code != now.code:
        found.append(f"code: {_show(recorded.code)} -> {_show(now.code)}")
    if recorded.clips.keys() != now.clips.keys():
        new, gone = sorted(now.clips.keys() - recorded.clips.keys()), sorted(recorded.clips.keys() - now.clips.keys())
        found.append(f"clips: {len(recorded.clips)} -> {len(now.clips)}"
                     + (f", new {_names(new)}" if new else "") + (f", gone {_names(gone)}" if gone else ""))
    changed = sorted(c for c in kept & recorded.clips.keys() & now.clips.keys() if recorded.clips[c] != now.clips[c])
    if changed:
        found.append(f"files of recorded clips {_names(changed)}: changed since they ran")
    return found


def clip_fingerprint(clip: Clip) -> str:
    """A digest of what a clip's rows come from: its source, its files (path, size, modification time), its
    synthetic spec or its video segment (with the video file's). A file that is missing counts as such."""
    paths = [clip.video.path] if clip.video else [*clip.frame_paths, *clip.label_paths]
    files = [(path, *_stat(path)) for path in paths if path]
    spec = clip.synthetic or clip.video
    identity = json.dumps([clip.source, asdict(spec) if spec else None, files])
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content ("missing" when there is none)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return "missing"
    return digest.hexdigest()


def _stat(path: str) -> tuple[int, int] | tuple[None, None]:
    try:
        stat = os.stat(path)
    except OSError:
        return None, None
    return stat.st_size, stat.st_mtime_ns


def _show(value: Any) -> str:
    return "(none)" if value is None or value == "" else str(value)


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_CLIPS])
    return shown + (f" and {len(ids) - SHOWN_CLIPS} more" if len(ids) > SHOWN_CLIPS else "")
