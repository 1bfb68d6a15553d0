import threading

import pytest
import torch

from blockcopy_core.data import build_clips
from blockcopy_core.pipeline import runner as runner_module
from blockcopy_core.pipeline.prefetch import Prefetcher
from blockcopy_core.pipeline.runner import ClipRunner


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_keeps_order(depth):
    assert list(Prefetcher(iter(range(10)), depth)) == list(range(10))


@pytest.mark.parametrize("depth", [0, 2])
def test_prefetch_raises_at_the_failing_item(depth):
    def items():
        yield 1
        yield 2
        raise OSError("frame 3 is corrupt")

    stream = Prefetcher(items(), depth)
    assert next(stream) == 1
    assert next(stream) == 2
    with pytest.raises(OSError, match="frame 3"):
        next(stream)
    with pytest.raises(StopIteration):
        next(stream)


def test_reading_starts_at_once_and_stops_on_close():
    produced, closed = threading.Event(), []

    def items():
        try:
            for i in range(100):
                produced.set()
                yield i
        finally:
            closed.append(True)

    stream = Prefetcher(items(), 2)
    assert produced.wait(10)  # before anyone asked for an item
    stream.close()
    assert closed == [True]
    with pytest.raises(StopIteration):
        next(stream)


def test_the_upcoming_clips_are_read_while_the_runner_runs_the_ones_before(monkeypatch):
    clips = build_clips("synthetic", clip_length=3, num_clips=3, seed=0, height=64, width=128)
    opened: list[str] = []  # clip ids, as their frames are first read
    second_opened = threading.Event()
    read_frames = runner_module.iter_frames

    def recorded_frames(clip):
        opened.append(clip.clip_id)
        if clip is clips[1]:
            second_opened.set()
        yield from read_frames(clip)

    monkeypatch.setattr(runner_module, "iter_frames", recorded_frames)

    def model(x):
        second_opened.wait(10)  # the first clip's frames wait (at most 10 s) for the second one to be read
        return torch.zeros(x.shape[0], 19, *x.shape[2:])

    runner = ClipRunner(model, torch.device("cpu"), pad_multiple=32, measure=False, prefetch_depth=2)
    first = runner.run([clips[0]], "eval", upcoming=[clips[1]])
    assert opened == [clips[0].clip_id, clips[1].clip_id]  # the second clip's frames read before its run
    second = runner.run([clips[1]], "eval", upcoming=[clips[2]])
    assert opened.count(clips[1].clip_id) == 1  # its run took the stream read ahead
    third = runner.run([clips[0]], "eval")  # not the clip announced: that stream is closed, this one read anew
    assert opened.count(clips[0].clip_id) == 2 and not runner._read_ahead
    for results in (first, second, third):
        assert results[0].status == "ok" and results[0].num_frames == 3
    assert [f.name for f in second[0].frames] == list(clips[1].frame_names)
