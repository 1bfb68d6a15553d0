"""A progress line every few seconds that reads well in a terminal and in ``ray job logs``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..reporting.results import ClipResult

log = logging.getLogger("blockcopy")


class Progress:
    """Counts a phase's finished clips and, live, its frames (``frames_done``: frames run so far by the executor,
    across phases); a background thread logs frames and clips done, FPS, an ETA from the frames and failures."""

    def __init__(self, phase: str, total_clips: int, total_frames: int, frames_done: Callable[[], int],
                 interval_s: float = 10.0):
        self.phase = phase
        self.total, self.total_frames = total_clips, total_frames
        self.interval_s = interval_s
        self.done = self.failed = self.frames = 0
        self._frames_done = frames_done
        self._first_frame = frames_done()
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self.report()

    def add(self, results: list[ClipResult]) -> None:
        with self._lock:
            self.done += len(results)
            self.failed += sum(r.status != "ok" for r in results)
            self.frames += sum(r.num_frames for r in results)

    def line(self) -> str:
        live = self._frames_done() - self._first_frame  # frames of clips still running included
        with self._lock:
            elapsed = time.monotonic() - self.start
            frames = min(max(self.frames, live), self.total_frames)
            fps = frames / elapsed if elapsed > 0 else 0.0
            eta = (self.total_frames - frames) / fps if fps > 0 else float("nan")
            eta_text = "?" if eta != eta else f"{int(eta // 60)}m{int(eta % 60):02d}s"
            return (f"{self.phase}: {frames}/{self.total_frames} frames, {self.done}/{self.total} clips, "
                    f"{fps:.2f} frames/s, elapsed {int(elapsed)}s, ETA {eta_text}, {self.failed} failed")

    def report(self) -> None:
        log.info("%s", self.line())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.report()
