"""Reading frames ahead of the model in background threads."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order while up to ``depth`` next ones are produced by a worker thread.

    ``depth`` 0 iterates in the caller's thread. An exception raised while producing an item is raised
    where that item would have been yielded, so errors keep their position in the stream.
    """
    if depth <= 0:
        yield from items
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = deque(pool.submit(next, items, _DONE) for _ in range(depth))
        while pending:
            item = pending.popleft().result()
            if item is _DONE:
                return
            pending.append(pool.submit(next, items, _DONE))
            yield item
