"""The procedural street-scene generator: determinism, plausible labels, motion, panning, CLI."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

from blockcopy_core.data import build_clips, iter_frames
from blockcopy_core.data.scene.classes import (
    BUILDING,
    CAR,
    POLE,
    ROAD,
    SIDEWALK,
    SKY,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
)
from blockcopy_core.data.synthetic import SyntheticClipSpec, main, render_clip, synthetic_clips

MOVING = [11, 12, 13, 17, 18]  # person, rider, car, motorcycle, bicycle
H, W = 128, 256


def frames(spec):
    return list(render_clip(spec))


def test_same_spec_gives_bitwise_identical_frames_and_labels():
    spec = SyntheticClipSpec(seed=3, clip_index=1, height=64, width=128, num_frames=3, panning=True)
    again = pickle.loads(pickle.dumps(spec))
    for (image_a, label_a), (image_b, label_b) in zip(frames(spec), frames(again), strict=True):
        assert image_a.dtype == np.uint8 and image_a.shape == (64, 128, 3)
        assert label_a.dtype == np.uint8 and label_a.shape == (64, 128)
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(label_a, label_b)


@pytest.mark.parametrize("other", [dict(seed=4), dict(clip_index=2)])
def test_different_seed_or_clip_gives_a_different_scene(other):
    base = dict(seed=3, clip_index=1, height=64, width=128, num_frames=1, panning=False)
    (image_a, label_a), = frames(SyntheticClipSpec(**base))
    (image_b, label_b), = frames(SyntheticClipSpec(**{**base, **other}))
    assert not np.array_equal(image_a, image_b)
    assert not np.array_equal(label_a, label_b)


def test_layout_is_a_street_scene():
    seen = set()
    for index in range(4):
        for _, label in frames(SyntheticClipSpec(0, index, H, W, 2, panning=index % 2 == 1)):
            assert (label[0] == SKY).all(), "sky fills the top row"
            bottom = set(np.unique(label[-1]).tolist())
            assert ROAD in bottom and bottom <= {ROAD, *MOVING}, "road (and traffic) at the bottom"
            middle = label[int(0.3 * H) : int(0.45 * H)]
            assert (middle == BUILDING).mean() > 0.3, "buildings in the middle band"
            assert set(np.unique(label).tolist()) <= {*range(19)}
            seen |= set(np.unique(label).tolist())
    assert {ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, CAR} <= seen
    assert seen & {TRAFFIC_SIGN, TRAFFIC_LIGHT}


def test_sidewalk_lies_between_buildings_and_road():
    (image, label), = frames(SyntheticClipSpec(0, 0, H, W, 1, panning=False))
    column = label[:, 0]
    rows = {cls: np.flatnonzero(column == cls) for cls in (SKY, SIDEWALK, ROAD)}
    assert rows[SKY].max() < rows[SIDEWALK].min() <= rows[SIDEWALK].max() < rows[ROAD].min()


def test_classes_are_textured_not_flat():
    (image, label), = frames(SyntheticClipSpec(0, 2, H, W, 1, panning=False))
    for cls in (ROAD, BUILDING, VEGETATION, SKY):
        assert image[label == cls].std(axis=0).max() > 5, f"class {cls} is a flat colour"


def test_objects_move_in_static_clips():
    for index in (0, 2):
        spec = SyntheticClipSpec(0, index, H, W, 5, panning=False)
        labels = [label for _, label in frames(spec)]
        changed = labels[0] != labels[-1]
        assert changed.sum() > 0, "something moves"
        moving_now = np.isin(labels[0], MOVING) | np.isin(labels[-1], MOVING)
        assert moving_now[changed].all(), "only moving objects change the labels of a static clip"


def _best_shift(a, b, max_shift):
    """The horizontal shift s with b[:, x] == a[:, x + s] on the overlap, and its mismatch rate."""
    scores = {}
    for s in range(-max_shift, max_shift + 1):
        left, right = (a[:, s:], b[:, : b.shape[1] - s]) if s >= 0 else (a[:, :s], b[:, -s:])
        scores[s] = (left != right).mean()
    best = min(scores, key=scores.get)
    return best, scores[best]


def test_panning_clips_pan_and_static_clips_do_not():
    upper = slice(0, int(0.3 * H))  # sky, roofs, tree tops and signs only: static scenery
    shifts = {}
    for spec in (SyntheticClipSpec(0, 1, H, W, 8, panning=True), SyntheticClipSpec(0, 0, H, W, 8, panning=False)):
        labels = [label[upper] for _, label in frames(spec)]
        shift, mismatch = _best_shift(labels[0], labels[-1], W // 4)
        assert mismatch == 0.0
        shifts[spec.panning] = shift
    assert shifts[False] == 0
    assert shifts[True] != 0


def test_synthetic_clip_list():
    clips = synthetic_clips(10, 4, 64, 128, seed=7)
    assert len({clip.clip_id for clip in clips}) == 10
    assert sum(clip.synthetic.panning for clip in clips) == 5
    assert all(clip.num_frames == 4 and clip.label_paths == (None,) * 4 for clip in clips)
    assert clips[0].frame_paths[2] == "synthetic/s7_c0/000002"
    later = synthetic_clips(3, 4, 64, 128, seed=7, first_clip=10)
    assert not {c.clip_id for c in later} & {c.clip_id for c in clips}
    assert pickle.loads(pickle.dumps(clips[3])) == clips[3]


def test_build_clips_defaults_to_ten_synthetic_clips_and_iter_frames_gives_labels():
    clips = build_clips("synthetic", clip_length=2, height=64, width=128, seed=1)
    assert len(clips) == 10 and all(clip.source == "synthetic" for clip in clips)
    loaded = list(iter_frames(clips[0]))
    assert [frame.name for frame in loaded] == list(clips[0].frame_paths)
    for frame, (image, label) in zip(loaded, render_clip(clips[0].synthetic), strict=True):
        np.testing.assert_array_equal(frame.image, image)
        np.testing.assert_array_equal(frame.label, label)


@pytest.mark.parametrize("size", [(32, 32), (96, 160), (256, 64)])
def test_any_multiple_of_32_renders(size):
    for index in range(4):
        for image, label in render_clip(SyntheticClipSpec(2, index, *size, 3, panning=index % 2 == 1)):
            assert image.shape == (*size, 3) and label.shape == size


@pytest.mark.parametrize("bad", [dict(height=100), dict(width=0), dict(num_frames=0), dict(seed=-1)])
def test_bad_spec_is_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SyntheticClipSpec(**{**dict(seed=0, clip_index=0, height=64, width=128, num_frames=2, panning=False), **bad})


def test_cli_exports_a_demo_folder(tmp_path):
    main(["--export-demo", str(tmp_path / "demo"), "--num-clips", "2", "--clip-length", "3",
          "--height", "64", "--width", "128", "--ext", "jpg"])
    assert len(list((tmp_path / "demo").rglob("*.jpg"))) == 6


def test_cli_runs_as_a_module(tmp_path):
    command = [sys.executable, "-m", "blockcopy_core.data.synthetic", "--export-cityscapes", str(tmp_path),
               "--num-clips", "1", "--clip-length", "2", "--height", "64", "--width", "128", "--seed", "3"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "Warning" not in result.stderr
    assert len(list((tmp_path / "leftImg8bit_sequence" / "val").rglob("*.png"))) == 2
