"""Errors about one input file: they name it, say what is wrong, and cross from a Ray actor to the driver."""

from __future__ import annotations

from pathlib import Path


class FileError(Exception):
    """``path`` and ``reason``; the message is ``prefix`` + ``path: reason``."""

    prefix = ""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{self.prefix}{path}: {reason}")
        self.path, self.reason = str(path), reason

    def __reduce__(self) -> tuple:  # picklable with its arguments, so it can cross from a Ray actor to the driver
        return type(self), (self.path, self.reason)


class FrameReadError(FileError, RuntimeError):
    """An image or label file could not be read or decoded."""

    prefix = "cannot read "


class VideoInputError(FileError, ValueError):
    """A video path matches nothing, or a file is not a decodable video."""
