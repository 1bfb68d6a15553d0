"""A progress line every few seconds that reads well in a terminal and in ``ray job logs``."""

from __future__ import annotations

import logging
import threading
import time

from ..reporting.results import ClipResult

log = logging.getLogger("blockcopy")


class Progress:
    """Counts finished clips of a phase; a background thread logs clips done, FPS, ETA and failures."""

    def __init__(self, phase: str, total_clips: int, interval_s: float = 10.0):
        self.phase = phase
        self.total = total_clips
        self.interval_s = interval_s
        self.done = self.failed = self.frames = 0
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
        self.report()

    def add(self, results: list[ClipResult]) -> None:
        with self._lock:
            self.done += len(results)
            self.failed += sum(r.status != "ok" for r in results)
            self.frames += sum(r.num_frames for r in results)

    def line(self) -> str:
        with self._lock:
            elapsed = time.monotonic() - self.start
            fps = self.frames / elapsed if elapsed > 0 else 0.0
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            eta_text = "?" if eta != eta else f"{int(eta // 60)}m{int(eta % 60):02d}s"
            return (f"{self.phase}: {self.done}/{self.total} clips, {self.frames} frames, {fps:.2f} frames/s, "
                    f"elapsed {int(elapsed)}s, ETA {eta_text}, {self.failed} failed")

    def report(self) -> None:
        log.info("%s", self.line())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.report()
