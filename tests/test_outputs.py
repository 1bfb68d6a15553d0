"""Outputs for people (--output-dir) and Cityscapes-format predictions (--save-predictions)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blockcopy_core.constants import TRAIN_ID_TO_LABEL_ID
from blockcopy_core.data import build_clips
from blockcopy_core.data.synthetic import export_cityscapes
from blockcopy_core.reporting import read_summary
from jobs import evaluate

INLINE = ["--executor", "inline", "--workers", "0", "--seed", "7"]
SYNTHETIC = [*INLINE, "--res", "64", "--clip-length", "3", "--num-clips-eval", "2"]


def test_output_dir_has_pictures_per_frame_and_an_animation_per_clip(tmp_path):
    out = tmp_path / "out"
    assert evaluate.main([*SYNTHETIC, "--report-dir", str(tmp_path / "run"), "--output-dir", str(out)]) == 0
    clip_dirs = sorted(out.iterdir())
    assert len(clip_dirs) == 2
    for folder in clip_dirs:
        assert len(list(folder.glob("*_input.jpg"))) == len(list(folder.glob("*_pred.png"))) == 3
        with Image.open(folder / f"{folder.name}.gif") as gif:
            assert gif.n_frames == 3 and gif.width == 2 * 128  # the dense model: input and prediction panels


def test_blockcopy_animation_frames_are_three_panels_with_a_legend(tmp_path):
    out = tmp_path / "out"
    assert evaluate.main([*SYNTHETIC, "--block-policy", "random", "--block-size", "32", "--report-dir",
                          str(tmp_path / "run"), "--output-dir", str(out)]) == 0
    folder = sorted(out.iterdir())[0]
    inputs, panels = sorted(folder.glob("*_input.jpg")), sorted(folder.glob("*_panels.png"))
    assert len(inputs) == len(panels) == len(list(folder.glob("*_grid.jpg"))) == 3
    with Image.open(inputs[0]) as frame, Image.open(panels[0]) as picture:
        assert frame.size == (128, 64)
        assert picture.width == 3 * frame.width and picture.height > frame.height  # captions above, legend below
    with Image.open(folder / f"{folder.name}.gif") as gif:
        assert gif.n_frames == 3 and gif.size == picture.size


def test_synthetic_predictions_for_every_frame_as_label_ids(tmp_path):
    evaluate.main([*SYNTHETIC, "--report-dir", str(tmp_path / "run"), "--save-predictions"])
    files = sorted((tmp_path / "run" / "predictions").rglob("*.png"))
    assert len(files) == 6
    values = np.unique(np.concatenate([np.unique(np.array(Image.open(f))) for f in files]))
    assert set(values.tolist()) <= set(TRAIN_ID_TO_LABEL_ID)
    assert np.array(Image.open(files[0])).shape == (64, 128)


def test_official_evaluator_scores_saved_cityscapes_predictions_like_the_job(tmp_path, official_evaluator):
    root = tmp_path / "cityscapes"
    export_cityscapes(root, build_clips("synthetic", clip_length=3, num_clips=3, seed=2, height=64, width=128))
    report = tmp_path / "run"
    evaluate.main([*INLINE, "--cityscapes-dir", str(root), "--random-weights", "--clip-length", "3",
                   "--report-dir", str(report), "--save-predictions"])
    predictions = sorted((report / "predictions").rglob("*.png"))
    assert len(predictions) == 3 and all(p.name.endswith("_000019_pred_labelIds.png") for p in predictions)

    ground_truth = sorted(str(p) for p in (root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    matched, result = official_evaluator(root, report / "predictions", ground_truth)
    assert sorted(Path(p) for p in matched) == predictions
    assert read_summary(report)["mean_iou"] == pytest.approx(100 * result["averageScoreClasses"], abs=0.01)
