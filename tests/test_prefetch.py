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
