import os

import pytest

from blockcopy_core.pipeline.prefetch import prefetch


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_keeps_order(depth):
    assert list(prefetch(iter(range(10)), depth)) == list(range(10))


@pytest.mark.parametrize("depth", [0, 2])
def test_prefetch_raises_at_the_failing_item(depth):
    def items():
        yield 1
        yield 2
        raise OSError("frame 3 is corrupt")

    stream = prefetch(items(), depth)
    assert next(stream) == 1
    assert next(stream) == 2
    with pytest.raises(OSError, match="frame 3"):
        next(stream)


def policies_seen(depth: int) -> set[int]:
    def items():
        for _ in range(3):
            yield os.sched_getscheduler(0)

    return set(prefetch(items(), depth))


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's SCHED_IDLE")
def test_prefetch_worker_runs_at_idle_priority_and_the_caller_keeps_its_own():
    before = os.sched_getscheduler(0)
    assert policies_seen(2) == {os.SCHED_IDLE}
    assert os.sched_getscheduler(0) == before != os.SCHED_IDLE
    assert policies_seen(0) == {before}  # depth 0: the caller's thread, untouched
