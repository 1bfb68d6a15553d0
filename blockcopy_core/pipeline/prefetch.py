"""Reading frames ahead of the model in background threads."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class Prefetcher(Iterator[T], Generic[T]):
    """``items`` in order while up to ``depth`` next ones are produced by a worker thread, which starts on them at
    once (so a clip's first frames can be read while the model still runs the clip before it).

    ``depth`` 0 iterates in the caller's thread. An exception raised while producing an item is raised where that
    item would have been yielded, so errors keep their position in the stream. ``close`` stops the worker (after
    the item it is producing) and closes ``items``.
    """

    def __init__(self, items: Iterator[T], depth: int):
        self._items = items
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") if depth > 0 else None
        self._pending: deque[Future] = deque(self._submit() for _ in range(max(depth, 0)))

    def _submit(self) -> Future:
        return self._pool.submit(next, self._items, _DONE)

    def __next__(self) -> T:
        if self._pool is None:
            return next(self._items)
        if not self._pending:
            raise StopIteration
        try:
            item = self._pending.popleft().result()
        except BaseException:
            self.close()
            raise
        if item is _DONE:
            self.close()
            raise StopIteration
        self._pending.append(self._submit())
        return item

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
