"""Video files as a clip source: finding, probing, planning segments, decoding, and bad files.

Every video is written here with PyAV (small synthetic street scenes, 64x128), nothing is downloaded.
"""

import pickle

import av
import numpy as np
import pytest

from blockcopy_core.data import Clip, FrameReadError, build_clips, iter_frames
from blockcopy_core.data.decode import iter_video_frames
from blockcopy_core.data.encode import VideoEncoder
from blockcopy_core.data.segments import VideoSegment, plan_segments
from blockcopy_core.data.synthetic import write_synthetic_video
from blockcopy_core.data.video import video_clips
from blockcopy_core.data.videofiles import VideoInfo, VideoInputError, find_videos, probe_video

H, W, FPS = 64, 128, 25


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """60 frames at 25 fps: keyframes at 0 and 50 (every 2 s), so most segments start between keyframes."""
    return write_synthetic_video(tmp_path_factory.mktemp("v") / "street.mp4", 60, H, W, FPS)


@pytest.fixture(scope="module")
def reference(video):
    """Every frame of ``video``, decoded from the start without seeking."""
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------- finding


def test_folders_are_natural_sorted_recursively_and_any_case(tmp_path):
    for name in ["b/clip10.mp4", "b/clip2.MKV", "a.avi", "c/d/e.webm", "x.mov", "notes.txt", "y.mp4.bak"]:
        _touch(tmp_path / name)
    found = [p.relative_to(tmp_path).as_posix() for p in find_videos([tmp_path])]
    assert found == ["a.avi", "b/clip2.MKV", "b/clip10.mp4", "c/d/e.webm", "x.mov"]


def test_files_and_globs_keep_the_order_given_and_each_file_once(tmp_path):
    files = [_touch(tmp_path / name) for name in ["v10.mp4", "v2.mp4", "v1.webm", "other.txt"]]
    found = find_videos([str(files[0]), str(tmp_path / "v*.mp4"), str(tmp_path / "*")])
    assert [p.name for p in found] == ["v10.mp4", "v2.mp4", "v1.webm"]
    assert find_videos([tmp_path / "other.txt"]) == [files[3]]  # a named file is taken, probing judges it
    assert [p.name for p in find_videos([str(tmp_path / "**" / "*.webm")])] == ["v1.webm"]


@pytest.mark.parametrize("name, message", [("missing.mp4", "no such file or folder"),
                                            ("*.mkv", "matches no video"), ("empty_dir", "no video files")])
def test_a_path_matching_nothing_is_named(tmp_path, name, message):
    (tmp_path / "empty_dir").mkdir()
    _touch(tmp_path / "empty_dir" / "readme.txt")
    with pytest.raises(VideoInputError, match=message) as err:
        find_videos([str(tmp_path / name)])
    assert name in str(err.value) and isinstance(err.value, ValueError)
    with pytest.raises(VideoInputError):
        find_videos([])


# --------------------------------------------------------------------------------------- probing


def test_probe_reads_the_stream(video):
    info = probe_video(video)
    assert info == VideoInfo(str(video), 25.0, 60, W, H, "h264", 2.4)


@pytest.mark.parametrize("suffix, codec", [(".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".mkv", "libx264")])
def test_probe_counts_frames_where_the_container_does_not_say(tmp_path, suffix, codec):
    path = tmp_path / f"v{suffix}"
    with VideoEncoder(path, 10, codec=codec) as encoder:
        for value in range(0, 120, 10):
            encoder.add(np.full((H, W, 3), value, np.uint8))
    info = probe_video(path)
    assert (info.num_frames, info.fps, info.height, info.width) == (12, 10.0, H, W)
    assert [index for index, _ in iter_video_frames(plan_segments(info, 5)[1])] == list(range(5, 10))


def _audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: _touch(p / "random.mp4", np.random.default_rng(0).bytes(4096)), "not a readable video"),
    (lambda p: _touch(p / "empty.mp4", b""), "empty"),
    (lambda p: _audio_only(p / "audio.mp4"), "no video stream"),
    (lambda p: p / "gone.mp4", "no such file"),
])
def test_probe_refuses_what_is_no_video_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(VideoInputError, match=message) as err:
        probe_video(path)
    assert str(path) in str(err.value) and err.value.path == str(path)
    assert pickle.loads(pickle.dumps(err.value)).path == str(path)


# --------------------------------------------------------------------------------------- planning


INFO = VideoInfo("/videos/drive.mp4", 10.0, 95, W, H, "h264", 9.5)


def test_segments_cut_the_video_into_consecutive_runs():
    segments = plan_segments(INFO, 20)
    assert [(s.start_frame, s.num_frames) for s in segments] == [(0, 20), (20, 20), (40, 20), (60, 20), (80, 15)]
    assert [s.segment_index for s in segments] == list(range(5)) and {s.num_segments for s in segments} == {5}
    assert {s.video_id for s in segments} == {"drive"} and segments[1].frame_name(23) == "drive/000023"
    assert len(pickle.dumps(segments[0])) < 500


@pytest.mark.parametrize("kwargs, frames", [
    (dict(start_s=1.0, end_s=5.0), list(range(10, 50))),  # 1.0 s <= t < 5.0 s
    (dict(start_s=1.05, end_s=2.0), list(range(11, 20))),  # a time between frames starts at the next one
    (dict(stride=3, start_s=1.0, end_s=5.0), list(range(10, 50, 3))),
    (dict(stride=4, max_frames=7), list(range(0, 28, 4))),
    (dict(end_s=100.0), list(range(95))),
    (dict(max_frames=1000), list(range(95))),
])
def test_start_end_stride_and_max_frames_select_frames(kwargs, frames):
    segments = plan_segments(INFO, 6, **kwargs)
    assert [i for s in segments for i in s.frame_indices] == frames
    assert all(s.num_frames == 6 for s in segments[:-1]) and segments[-1].num_frames == len(frames) - 6 * (
        len(segments) - 1)
    assert segments[0].output_fps == 10.0 / kwargs.get("stride", 1)


def test_bad_plans_are_refused():
    with pytest.raises(VideoInputError, match="no frames selected") as err:
        plan_segments(INFO, 10, start_s=9.5)
    assert "drive.mp4" in str(err.value)
    for kwargs in [dict(segment_length=0), dict(stride=0), dict(max_frames=0), dict(start_s=-1),
                   dict(start_s=2, end_s=2), dict(end_s=0)]:
        with pytest.raises(ValueError):
            plan_segments(INFO, **{"segment_length": 10, **kwargs})


# --------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=3), dict(start_s=0.52, end_s=2.2, stride=2),
                                    dict(max_frames=25, start_s=1.0)])
def test_segments_decode_every_selected_frame_once_in_order(video, reference, kwargs):
    segments = plan_segments(probe_video(video), 17, **kwargs)
    decoded = [(index, image) for segment in segments for index, image in iter_video_frames(segment)]
    assert [index for index, _ in decoded] == [i for s in segments for i in s.frame_indices]
    for index, image in decoded:
        assert image.shape == (H, W, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, reference[index])


def test_video_clips_decode_through_iter_frames(video, reference):
    clips = build_clips("video", video_paths=[video], segment_length=25, stride=2)
    assert [clip.clip_id for clip in clips] == ["street#s0000", "street#s0001"]
    assert [clip.num_frames for clip in clips] == [25, 5] and clips[1].video.start_frame == 50
    frames = list(iter_frames(clips[1]))
    assert [frame.name for frame in frames] == ["street/000050", "street/000052", "street/000054",
                                                "street/000056", "street/000058"]
    assert all(frame.label is None for frame in frames) and clips[1].label_paths == (None,) * 5
    np.testing.assert_array_equal(frames[2].image, reference[54])
    assert len(pickle.dumps(clips[0])) < 2000
    assert build_clips("video", video_paths=[video], segment_length=25, stride=2, num_clips=1,
                       first_clip=1) == clips[1:]


def test_videos_sharing_a_stem_get_distinct_ids(video, tmp_path):
    other = write_synthetic_video(tmp_path / "street.mkv", 5, H, W, FPS)
    clips = build_clips("video", video_paths=[video, other], segment_length=100)
    ids = [clip.clip_id for clip in clips]
    assert len(set(ids)) == 2 and all(i.startswith("street-") and i.endswith("#s0000") for i in ids)
    assert ids == [c.clip_id for c in build_clips("video", video_paths=[video, other], segment_length=100)]


def test_unreadable_videos_are_returned_apart_or_raised(video, tmp_path):
    bad = _touch(tmp_path / "bad.mp4", b"not a video at all")
    clips, errors = video_clips([video, bad], segment_length=30)
    assert [clip.clip_id for clip in clips] == ["street#s0000", "street#s0001"]
    assert [err.path for err in errors] == [str(bad)]
    with pytest.raises(VideoInputError, match="bad.mp4"):
        build_clips("video", video_paths=[video, bad])
    with pytest.raises(ValueError, match="video_paths"):
        build_clips("video")


def test_a_video_clip_needs_its_segment():
    segment = plan_segments(INFO, 2)[0]
    with pytest.raises(ValueError, match="video segment"):
        Clip("c", "video", ("a", "b"), (None, None))
    with pytest.raises(ValueError, match="video segment"):
        Clip("c", "demo", ("a", "b"), (None, None), video=segment)
    with pytest.raises(ValueError, match="decodes 2"):
        Clip("c", "video", ("a",), (None,), video=segment)


# --------------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_truncated_file_keeps_the_frames_before_the_cut(tmp_path, suffix):
    whole = write_synthetic_video(tmp_path / f"whole{suffix}", 40, H, W, FPS)
    cut = _touch(tmp_path / f"cut{suffix}", whole.read_bytes()[: whole.stat().st_size // 2])
    info = probe_video(cut)
    assert info.num_frames == 40  # the header still says 40
    decoded = []
    with pytest.raises(FrameReadError, match="truncated") as err:
        for index, _ in iter_video_frames(plan_segments(info, 40)[0]):
            decoded.append(index)
    assert 0 < len(decoded) < 40 and decoded == list(range(len(decoded)))
    assert err.value.path == str(cut) and f"frame {len(decoded)}:" in str(err.value)
    assert f"{len(decoded)} of segment 0's 40 frames decoded" in str(err.value)


def test_a_size_change_mid_stream_fails_at_that_frame(tmp_path):
    parts = []
    for index, (height, width) in enumerate([(H, W), (2 * H, W)]):  # MPEG-TS files join by concatenation
        parts.append(tmp_path / f"part{index}.ts")
        with VideoEncoder(parts[-1], FPS) as encoder:
            for value in range(0, 100, 10):
                encoder.add(np.full((height, width, 3), value, np.uint8))
    joined = _touch(tmp_path / "joined.ts", parts[0].read_bytes() + parts[1].read_bytes())
    info = probe_video(joined)
    decoded = []
    with pytest.raises(FrameReadError, match="size changes mid-stream to 128x128") as err:
        for index, _ in iter_video_frames(plan_segments(info, 100)[0]):
            decoded.append(index)
    assert len(decoded) == 10 and err.value.path == str(joined) and "10 of segment 0's" in str(err.value)


def test_decode_errors_name_the_file(tmp_path, video):
    segment = plan_segments(probe_video(video), 10)[0]
    gone = VideoSegment(**{**segment.__dict__, "path": str(tmp_path / "gone.mp4")})
    with pytest.raises(FrameReadError, match="gone.mp4") as err:
        list(iter_video_frames(gone))
    assert "0 of segment 0's 10 frames decoded" in str(err.value)
