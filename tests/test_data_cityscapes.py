"""The Cityscapes video loader, exercised on synthetic clips exported to the Cityscapes layout."""

import numpy as np
import pytest
from PIL import Image

from blockcopy_core.constants import TRAIN_ID_TO_LABEL_ID
from blockcopy_core.data import build_clips, iter_frames
from blockcopy_core.data.loading import load_train_ids
from blockcopy_core.data.synthetic import export_cityscapes, render_clip, synthetic_clips

LENGTH = 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    clips = synthetic_clips(2, LENGTH, 64, 128, seed=2)
    export_cityscapes(root, clips)
    return root, clips


def test_export_then_load_gives_the_generators_frames_and_label(exported):
    root, synthetic = exported
    clips = build_clips("cityscapes", cityscapes_dir=root, clip_length=LENGTH)
    assert [clip.clip_id for clip in clips] == ["synth2_000000_000019", "synth2_000001_000019"]
    for clip, original in zip(clips, synthetic, strict=True):
        assert clip.source == "cityscapes" and clip.num_frames == LENGTH
        frames = list(iter_frames(clip))
        generated = list(render_clip(original.synthetic))
        assert [f.name for f in frames] == [f"{clip.clip_id[:-6]}{n:06d}" for n in range(20 - LENGTH, 20)]
        for frame, (image, _) in zip(frames, generated, strict=True):
            np.testing.assert_array_equal(frame.image, image)
        assert all(frame.label is None for frame in frames[:-1])
        np.testing.assert_array_equal(frames[-1].label, generated[-1][1])


def test_shorter_clips_end_at_the_annotated_frame(exported):
    root, synthetic = exported
    clip = build_clips("cityscapes", cityscapes_dir=root, clip_length=2, num_clips=1, first_clip=1)[0]
    assert clip.clip_id == "synth2_000001_000019"
    images = [image for image, _ in render_clip(synthetic[1].synthetic)]
    for frame, image in zip(iter_frames(clip), images[-2:], strict=True):
        np.testing.assert_array_equal(frame.image, image)


@pytest.mark.parametrize("length", [0, 21])
def test_clip_length_outside_1_to_20_is_an_error(exported, length):
    with pytest.raises(ValueError, match="clip_length"):
        build_clips("cityscapes", cityscapes_dir=exported[0], clip_length=length)


def test_missing_sequence_frame_is_reported_when_the_list_is_built(tmp_path):
    export_cityscapes(tmp_path, synthetic_clips(1, LENGTH, 64, 128, seed=0))
    missing = tmp_path / "leftImg8bit_sequence" / "val" / "synth0" / "synth0_000000_000017_leftImg8bit.png"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_clips("cityscapes", cityscapes_dir=tmp_path, clip_length=LENGTH)
    assert build_clips("cityscapes", cityscapes_dir=tmp_path, clip_length=2)  # frames 18, 19 still there


def test_too_early_annotated_frame_for_the_clip_length_is_an_error(tmp_path):
    folder = tmp_path / "leftImg8bit" / "val" / "x"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "x_000000_000002_leftImg8bit.png")
    with pytest.raises(ValueError, match="too early"):
        build_clips("cityscapes", cityscapes_dir=tmp_path, clip_length=4)


def test_no_annotated_frames_names_the_folder(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path / "leftImg8bit" / "train")):
        build_clips("cityscapes", cityscapes_dir=tmp_path, mode="train")


def test_unknown_mode_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        build_clips("cityscapes", cityscapes_dir=tmp_path, mode="validation")


def test_test_split_without_labels_or_with_all_ignore_labels_has_no_label(tmp_path):
    export_cityscapes(tmp_path, synthetic_clips(2, 2, 64, 128, seed=0), split="test")
    labels = sorted((tmp_path / "gtFine" / "test").rglob("*_labelIds.png"))
    labels[0].unlink()
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(labels[1])  # labelId 0 = unlabeled everywhere
    clips = build_clips("cityscapes", cityscapes_dir=tmp_path, mode="test", clip_length=2)
    assert clips[0].label_paths == (None, None)
    assert clips[1].label_paths[-1] == str(labels[1])
    assert all(frame.label is None for clip in clips for frame in iter_frames(clip))


def test_label_ids_map_to_train_ids_and_everything_else_is_ignored(tmp_path):
    others = [0, 1, 4, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 255]
    ids = np.array([list(TRAIN_ID_TO_LABEL_ID) + others], np.uint8)
    Image.fromarray(ids).save(tmp_path / "l_gtFine_labelIds.png")
    train_ids = load_train_ids(tmp_path / "l_gtFine_labelIds.png")
    assert train_ids.dtype == np.uint8
    assert train_ids[0].tolist() == list(range(19)) + [255] * len(others)


def test_mapping_agrees_with_cityscapesscripts(tmp_path):
    labels = pytest.importorskip("cityscapesscripts.helpers.labels").labels
    official = {label.id: label.trainId for label in labels if 0 <= label.id < 256}
    ids = np.array([sorted(official)], np.uint8)
    Image.fromarray(ids).save(tmp_path / "l.png")
    expected = [official[i] if 0 <= official[i] < 19 else 255 for i in sorted(official)]
    assert load_train_ids(tmp_path / "l.png")[0].tolist() == expected
