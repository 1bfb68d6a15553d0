"""Reading frames ahead of the model in a background thread that runs on idle CPU time only."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order while up to ``depth`` next ones are produced by a worker thread.

    ``depth`` 0 iterates in the caller's thread. An exception raised while producing an item is raised
    where that item would have been yielded, so errors keep their position in the stream. The worker runs at
    idle priority (``idle_priority``).
    """
    if depth <= 0:
        yield from items
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch", initializer=idle_priority) as pool:
        pending = deque(pool.submit(next, items, _DONE) for _ in range(depth))
        while pending:
            item = pending.popleft().result()
            if item is _DONE:
                return
            pending.append(pool.submit(next, items, _DONE))
            yield item


def idle_priority() -> bool:
    """Put the calling thread (and the threads it starts, such as a video decoder's) under Linux's
    ``SCHED_IDLE``: it then runs when a core would otherwise idle (the model's serial Python, its waits) instead
    of taking a core from the model's threads mid-operator. A frame that is not ready in time still gets the
    CPU, once the model waits for it. On 2 CPU cores it made rl_semseg at 1024x2048 about 3% faster
    (docs/benchmarks.md). True when applied; False where the platform has no such policy or refuses it."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        return False
    return True
