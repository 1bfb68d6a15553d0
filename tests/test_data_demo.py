"""Demo folders: every image under a folder, natural-sorted into one video, cut into clips."""

import numpy as np
import pytest
from PIL import Image

from blockcopy_core.data import build_clips, iter_frames
from blockcopy_core.data.demo import demo_frames
from blockcopy_core.data.synthetic import export_demo, render_clip, synthetic_clips


def _write(path, value, ext_format=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 16, 3), value, np.uint8)).save(path, format=ext_format)


def test_natural_sort_recursive_and_any_case_extensions(tmp_path):
    names = ["frame10.png", "frame2.PNG", "frame1.jpg", "a/frame3.JPEG", "b2/x.png", "b10/x.Jpg"]
    for i, name in enumerate(names):
        fmt = "JPEG" if name.lower().endswith(("jpg", "jpeg")) else "PNG"
        _write(tmp_path / name, i * 10, fmt)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "c.png.bak").write_text("not an image either")
    order = [p.relative_to(tmp_path).as_posix() for p in demo_frames(tmp_path)]
    assert order == ["a/frame3.JPEG", "b2/x.png", "b10/x.Jpg", "frame1.jpg", "frame2.PNG", "frame10.png"]


def test_consecutive_clips_with_a_shorter_last_one(tmp_path):
    for i in range(5):
        _write(tmp_path / f"img{i}.png", i)
    clips = build_clips("demo", demo_dir=tmp_path, clip_length=2)
    assert [clip.num_frames for clip in clips] == [2, 2, 1]
    assert [clip.frame_names for clip in clips] == [("img0", "img1"), ("img2", "img3"), ("img4",)]
    assert all(label is None for clip in clips for label in clip.label_paths)
    assert len({clip.clip_id for clip in clips}) == 3
    chosen = build_clips("demo", demo_dir=tmp_path, clip_length=2, num_clips=1, first_clip=1)
    assert chosen == [clips[1]]


def test_exported_synthetic_clips_load_back_in_order(tmp_path):
    synthetic = synthetic_clips(2, 11, 64, 128, seed=4)  # frame10 must come after frame9, not after frame1
    export_demo(tmp_path, synthetic)
    clips = build_clips("demo", demo_dir=tmp_path, clip_length=11)
    assert len(clips) == 2
    for clip, original in zip(clips, synthetic, strict=True):
        frames = list(iter_frames(clip))
        assert [f.name for f in frames] == [f"{original.clip_id}/frame{t}" for t in range(11)]
        for frame, (image, _) in zip(frames, render_clip(original.synthetic), strict=True):
            np.testing.assert_array_equal(frame.image, image)
            assert frame.label is None


def test_jpeg_export_is_close_to_the_generated_frames(tmp_path):
    synthetic = synthetic_clips(1, 2, 64, 128, seed=4)
    export_demo(tmp_path, synthetic, ext="jpg")
    (clip,) = build_clips("demo", demo_dir=tmp_path, clip_length=2)
    for frame, (image, _) in zip(iter_frames(clip), render_clip(synthetic[0].synthetic), strict=True):
        assert np.abs(frame.image.astype(int) - image).mean() < 6


def test_empty_or_missing_folder_is_a_value_error_naming_it(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=str(tmp_path)):
        build_clips("demo", demo_dir=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        build_clips("demo", demo_dir=tmp_path / "nowhere")


def test_range_past_the_end_is_a_value_error(tmp_path):
    _write(tmp_path / "a.png", 0)
    with pytest.raises(ValueError, match="no clips"):
        build_clips("demo", demo_dir=tmp_path, first_clip=1)


def test_bad_export_extension(tmp_path):
    with pytest.raises(ValueError, match="gif"):
        export_demo(tmp_path, synthetic_clips(1, 1, 64, 128, seed=0), ext="gif")
