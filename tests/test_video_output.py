"""Outputs of video clips: per-segment overlay videos, class-index PNGs, and stitching segments into one file."""

import av
import numpy as np
import pytest
import torch
from PIL import Image

from blockcopy_core.data import build_clips, iter_frames
from blockcopy_core.data.encode import VideoEncoder
from blockcopy_core.data.synthetic import write_synthetic_video
from blockcopy_core.labels import colorize
from blockcopy_core.pipeline import video_output
from blockcopy_core.pipeline.legend import font_size, legend_for
from blockcopy_core.pipeline.video_output import (
    GRID_COLOUR,
    OUTLINE_MARKER,
    OUTLINE_NOTE,
    VideoOutputWriter,
    blend,
    outline_blocks,
    overlay_path,
    segment_overlay_path,
    stitch_segments,
    stitch_video,
)

H, W = 64, 128


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    video = write_synthetic_video(tmp_path_factory.mktemp("v") / "road.mp4", 45, H, W, fps=30)
    return build_clips("video", video_paths=[video], segment_length=20, stride=2)  # 23 frames: 20 + 3


def _prediction(index: int) -> np.ndarray:
    return np.full((H, W), index % 19, np.uint8)


def _run(writer, clips):
    for clip in clips:
        for index, frame in enumerate(iter_frames(clip)):
            writer.add_frame(clip, frame, _prediction(index), torch.rand(2, 4) > 0.5)
        writer.finish_clip(clip)


def _frame_size(path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.height, frame.width


def _count(path) -> tuple[int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), float(stream.average_rate)


def test_each_segment_becomes_an_overlay_video_and_the_video_one_file(clips, tmp_path, monkeypatch):
    writer = VideoOutputWriter(tmp_path, save_predictions=True, legend="below")
    _run(writer, clips)
    segments = [clip.video for clip in clips]
    assert [_count(segment_overlay_path(tmp_path, s)) for s in segments] == [(20, 15.0), (3, 15.0)]  # 30 fps / 2
    assert not list(tmp_path.rglob("*.partial.*"))
    band = legend_for(W, OUTLINE_NOTE, OUTLINE_MARKER, font_size(W)).height  # the legend below each frame
    assert [_frame_size(segment_overlay_path(tmp_path, s)) for s in segments] == [(H + band, W)] * 2
    monkeypatch.setattr(video_output, "_reencode", None)  # one run's segments join without re-encoding
    dest = stitch_video(tmp_path, segments[::-1])
    assert dest == overlay_path(tmp_path, "road") == tmp_path / "videos" / "road.mp4"
    assert _count(dest) == (23, 15.0)
    pngs = sorted((tmp_path / "videos" / "road" / "predictions").glob("*.png"))
    assert [p.stem for p in pngs] == [f"{i:06d}" for i in range(0, 46, 2)]
    with Image.open(pngs[21]) as image:  # frame 42 is the second of segment 1
        assert image.mode == "L" and (np.asarray(image) == 1).all()


def test_overlay_blends_class_colours_and_outlines_executed_blocks():
    image = np.full((8, 8, 3), 100, np.uint8)
    prediction = np.zeros((8, 8), np.uint8)
    np.testing.assert_array_equal(blend(image, prediction, 0.5), ((100 + colorize(prediction).astype(int)) + 1) // 2)
    grid = torch.tensor([[True, False], [False, False]])
    out = outline_blocks(image, grid)
    border = np.zeros((8, 8), bool)
    border[0, :4] = border[3, :4] = border[:4, 0] = border[:4, 3] = True
    assert out is image and (out[border] == GRID_COLOUR).all() and (out[~border] == 100).all()
    odd = outline_blocks(np.zeros((7, 9, 3), np.uint8), torch.tensor([[False, True]]))  # cells of 7x5, cut at 9
    expected = np.zeros((7, 9), bool)
    expected[0, 5:] = expected[6, 5:] = expected[:, 5] = True  # the cell's right edge (column 9) lies outside
    np.testing.assert_array_equal(odd.any(2), expected)


def test_a_rerun_restarts_its_segment_and_failed_ones_leave_nothing(clips, tmp_path):
    writer = VideoOutputWriter(tmp_path, show_grid=False, legend=None)
    frames = list(iter_frames(clips[0]))
    for frame in frames[:5]:  # the batch fails after five frames ...
        writer.add_frame(clips[0], frame, _prediction(0), None)
    _run(writer, clips[:1])  # ... and the clip is run again on its own
    assert _count(segment_overlay_path(tmp_path, clips[0].video))[0] == 20
    assert _frame_size(segment_overlay_path(tmp_path, clips[0].video)) == (H, W)  # no legend band
    writer.add_frame(clips[1], next(iter_frames(clips[1])), _prediction(0), None)
    writer.close()  # clip 1 never finished
    assert not segment_overlay_path(tmp_path, clips[1].video).exists() and not list(tmp_path.rglob("*.partial.*"))


def test_the_legend_goes_in_the_corner_where_it_fits_and_lights_the_classes_present(tmp_path, monkeypatch):
    encoded: list[list[np.ndarray]] = []  # per encoder, its frames

    class Recorder:
        def __init__(self, *args: object):
            encoded.append([])

        def add(self, image: np.ndarray) -> None:
            encoded[-1].append(image.copy())

    monkeypatch.setattr(video_output, "VideoEncoder", Recorder)
    clip = build_clips("video", video_paths=[write_synthetic_video(tmp_path / "big.mp4", 2, 384, 640, fps=10)])[0]
    grid = torch.tensor([[True, False], [False, False]])
    for legend in ("corner", None):
        writer = VideoOutputWriter(tmp_path, legend=legend)
        for frame in iter_frames(clip):
            writer.add_frame(clip, frame, np.full((384, 640), 13, np.uint8), grid)
    marked, plain = encoded
    assert [f.shape for f in marked] == [f.shape for f in plain] == [(384, 640, 3)] * 2  # the size is kept
    box = legend_for(320, OUTLINE_NOTE, OUTLINE_MARKER, font_size(640))
    changed = (marked[0] != plain[0]).any(2)
    assert changed[-box.height :, :320].mean() > 0.5 and not changed[: 384 - box.height].any()
    car, road = (box.boxes[index] for index in (13, 0))
    lit, dim = (marked[0][-box.height :, :320][region][:, :4].max() for region in (car, road))  # in the swatches
    assert lit > dim
    with pytest.raises(ValueError, match="legend must be"):
        VideoOutputWriter(tmp_path, legend="top")


def test_non_video_clips_are_ignored(tmp_path):
    clip = build_clips("synthetic", num_clips=1, clip_length=2, height=H, width=W)[0]
    writer = VideoOutputWriter(tmp_path)
    for frame in iter_frames(clip):
        writer.add_frame(clip, frame, _prediction(0), None)
    writer.finish_clip(clip)
    assert not any(tmp_path.iterdir())


def test_stitching_files_that_differ_re_encodes(tmp_path):
    files = []
    for index, (codec, count) in enumerate([("libx264", 4), ("mpeg4", 6)]):
        files.append(tmp_path / f"part{index}.mp4")
        with VideoEncoder(files[-1], 10, codec=codec) as encoder:
            for value in range(count):
                encoder.add(np.full((H, W, 3), 20 * value, np.uint8))
    assert stitch_segments(files, tmp_path / "all.mp4") == 10
    assert _count(tmp_path / "all.mp4") == (10, 10.0)
    with pytest.raises(ValueError, match="no segment files"):
        stitch_segments([], tmp_path / "none.mp4")
