"""Tests for the confusion matrix, label-id conversions, and parity with the official Cityscapes evaluator."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from blockcopy_core.constants import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE, TRAIN_ID_TO_LABEL_ID
from blockcopy_core.labels import colorize, label_ids_to_train_ids, train_ids_to_label_ids
from blockcopy_core.metrics import ConfusionMatrix, format_iou_table


def _random_pair(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions that agree with the labels on about 70% of pixels; about 15% of labels are 255."""
    label = rng.integers(0, NUM_CLASSES, shape).astype(np.uint8)
    label[rng.random(shape) < 0.15] = IGNORE_INDEX
    pred = np.where(rng.random(shape) < 0.7, label, rng.integers(0, NUM_CLASSES, shape))
    pred[pred == IGNORE_INDEX] = 0
    return pred.astype(np.int64), label


def test_hand_computed_example() -> None:
    # Valid pixels (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,0); the last pixel is ignored; class 3 never occurs.
    label = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    matrix = ConfusionMatrix(num_classes=4)
    matrix.update(pred, label)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = expected[0, 1] = expected[2, 0] = 1
    expected[1, 1] = 2
    np.testing.assert_array_equal(matrix.counts, expected)
    assert matrix.counts.dtype == np.int64
    # IoU = tp / (tp + fp + fn): class 0: 1 / (1 + 1 + 1); class 1: 2 / (2 + 1 + 0); class 2: 0 / (0 + 0 + 1);
    # class 3: undefined.
    np.testing.assert_allclose(matrix.iou(), [100 / 3, 200 / 3, 0.0, np.nan])
    assert matrix.mean_iou() == pytest.approx(100 / 3)
    assert matrix.pixel_accuracy() == pytest.approx(60.0)


def test_labels_outside_the_classes_are_ignored() -> None:
    rng = np.random.default_rng(0)
    pred = rng.integers(0, NUM_CLASSES, (8, 16))
    label = rng.integers(0, NUM_CLASSES, (8, 16)).astype(np.int32)
    outside = rng.random((8, 16)) < 0.3
    label_with_ignored = label.copy()
    label_with_ignored[outside] = rng.choice([IGNORE_INDEX, NUM_CLASSES, -1, 1000], size=int(outside.sum()))

    with_ignored = ConfusionMatrix()
    with_ignored.update(pred, label_with_ignored)
    only_valid = ConfusionMatrix()
    only_valid.update(pred[~outside], label[~outside])
    np.testing.assert_array_equal(with_ignored.counts, only_valid.counts)
    assert with_ignored.counts.sum() == (~outside).sum()


@pytest.mark.parametrize("bad", [NUM_CLASSES, -1, 255])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_prediction_outside_the_classes_is_an_error(bad: int, as_tensor: bool) -> None:
    pred = np.zeros((4, 4), dtype=np.int64)
    pred[2, 3] = bad
    label = np.full((4, 4), IGNORE_INDEX, dtype=np.uint8)  # even where the label is ignored
    matrix = ConfusionMatrix()
    with pytest.raises(ValueError, match=rf"prediction value {bad} "):
        matrix.update(torch.from_numpy(pred) if as_tensor else pred, label)
    assert matrix.counts.sum() == 0


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 4, 8\).*\(2, 8, 4\)"):
        ConfusionMatrix().update(np.zeros((2, 4, 8), dtype=np.int64), np.zeros((2, 8, 4), dtype=np.uint8))


def test_non_integer_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="prediction must hold integer class ids, got dtype float32"):
        ConfusionMatrix().update(np.zeros((2, 2), dtype=np.float32), np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="label must hold integer class ids, got dtype torch.bool"):
        ConfusionMatrix().update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.bool))


def test_merge_equals_one_big_update() -> None:
    pred, label = _random_pair(np.random.default_rng(1), (5, 16, 32))
    whole = ConfusionMatrix()
    whole.update(pred, label)  # leading batch dimension

    merged = ConfusionMatrix()
    parts = []
    for frame_pred, frame_label in zip(pred, label, strict=True):
        part = ConfusionMatrix()
        part.update(frame_pred, frame_label)
        parts.append(part)
        merged.merge(part)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_array_equal((parts[0] + parts[1]).counts, parts[0].counts + parts[1].counts)
    assert parts[0].counts.sum() == (label[0] != IGNORE_INDEX).sum()  # `+` left its operands alone

    with pytest.raises(ValueError, match="cannot merge a 3-class matrix into a 19-class matrix"):
        merged.merge(ConfusionMatrix(num_classes=3))


def test_torch_inputs_count_like_numpy() -> None:
    pred, label = _random_pair(np.random.default_rng(2), (2, 16, 32))
    reference = ConfusionMatrix()
    reference.update(pred, label)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        pred_t = torch.from_numpy(pred).to(device)
        label_t = torch.from_numpy(label).to(device)
        pairs = [(pred_t, label_t), (pred_t, label), (pred, label_t), (pred_t.to(torch.uint8), label_t)]
        for p, lab in pairs:
            matrix = ConfusionMatrix()
            matrix.update(p, lab)
            np.testing.assert_array_equal(matrix.counts, reference.counts, err_msg=device)


def test_flat_round_trip() -> None:
    pred, label = _random_pair(np.random.default_rng(3), (16, 32))
    matrix = ConfusionMatrix()
    matrix.update(pred, label)
    flat = matrix.to_flat()
    assert len(flat) == NUM_CLASSES * NUM_CLASSES
    assert json.loads(json.dumps(flat)) == flat  # plain Python ints, storable anywhere
    np.testing.assert_array_equal(ConfusionMatrix.from_flat(flat).counts, matrix.counts)
    from_array = ConfusionMatrix.from_flat(np.asarray(flat, dtype=np.int64))
    np.testing.assert_array_equal(from_array.counts, matrix.counts)

    with pytest.raises(ValueError, match="expected 361 counts for 19 classes, got shape \\(360,\\)"):
        ConfusionMatrix.from_flat(flat[:-1])
    with pytest.raises(ValueError, match="non-negative, got -1"):
        ConfusionMatrix.from_flat([-1] + flat[1:])
    with pytest.raises(ValueError, match="integers, got dtype float64"):
        ConfusionMatrix.from_flat([float(v) for v in flat])


def test_empty_matrix_scores_are_nan_without_warnings() -> None:
    matrix = ConfusionMatrix()
    matrix.update(np.zeros((4, 4), dtype=np.int64), np.full((4, 4), IGNORE_INDEX, dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(matrix.iou()).all()
        assert np.isnan(matrix.mean_iou())
        assert np.isnan(matrix.pixel_accuracy())


def test_iou_table_lists_every_class() -> None:
    matrix = ConfusionMatrix()
    matrix.update(np.array([0, 1, 1]), np.array([0, 1, 2]))
    lines = format_iou_table(matrix).splitlines()
    assert [line.rsplit(maxsplit=1)[0] for line in lines] == [*CLASS_NAMES, "mIoU", "pixel accuracy"]
    assert lines[0].split()[-1] == "100.00"  # road
    assert lines[2].split()[-1] == "0.00"  # building: in ground truth only
    assert lines[3].split()[-1] == "nan"  # wall: nowhere
    assert lines[-1].split()[-1] == "66.67"
    with pytest.raises(ValueError, match="needs 19 classes, got 4"):
        format_iou_table(ConfusionMatrix(num_classes=4))


def test_label_id_conversions_round_trip() -> None:
    train_ids = np.array([*range(NUM_CLASSES), IGNORE_INDEX], dtype=np.uint8).reshape(4, 5)
    label_ids = train_ids_to_label_ids(train_ids)
    assert label_ids.dtype == np.uint8 and label_ids.shape == (4, 5)
    assert label_ids.ravel().tolist() == [*TRAIN_ID_TO_LABEL_ID, 0]  # 255 -> labelId 0, "unlabeled"
    np.testing.assert_array_equal(label_ids_to_train_ids(label_ids), train_ids)
    np.testing.assert_array_equal(label_ids_to_train_ids(label_ids.astype(np.int64)), train_ids)


def test_label_ids_without_a_train_id_become_ignore() -> None:
    label_ids = np.array([-1, 0, 6, 7, 9, 33, 34, 255, 300])
    converted = label_ids_to_train_ids(label_ids)
    assert converted.dtype == np.uint8
    assert converted.tolist() == [255, 255, 255, 0, 255, 18, 255, 255, 255]


def test_label_id_table_matches_cityscapes_scripts() -> None:
    cs_labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    ids = [label.id for label in cs_labels.labels if label.id >= 0]
    expected = [label.trainId if 0 <= label.trainId < NUM_CLASSES else 255 for label in cs_labels.labels
                if label.id >= 0]
    assert label_ids_to_train_ids(np.array(ids, dtype=np.uint8)).tolist() == expected
    assert [cs_labels.id2label[i].name for i in TRAIN_ID_TO_LABEL_ID] == list(CLASS_NAMES)


@pytest.mark.parametrize("bad", [NUM_CLASSES, 254, -1])
def test_train_ids_outside_the_classes_are_an_error(bad: int) -> None:
    with pytest.raises(ValueError, match=rf"trainId {bad} is neither"):
        train_ids_to_label_ids(np.array([[0, bad]]))


def test_conversions_reject_floats() -> None:
    with pytest.raises(ValueError, match="labelIds must be an integer array, got dtype float64"):
        label_ids_to_train_ids(np.zeros(3))


def test_colorize() -> None:
    train_ids = np.array([[0, 13, IGNORE_INDEX], [18, 5, 7]], dtype=np.uint8)
    rgb = colorize(train_ids)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0].tolist() == [list(PALETTE[0]), list(PALETTE[13]), [0, 0, 0]]
    np.testing.assert_array_equal(colorize(train_ids.astype(np.int64)), rgb)
    assert colorize(np.array([-1, 19])).tolist() == [[0, 0, 0], [0, 0, 0]]


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_parity_with_official_cityscapes_evaluator(tmp_path: Path, official_evaluator) -> None:
    """Same confusion matrix, per-class IoU and mIoU as cityscapesscripts on random labelId PNGs.

    Both leave a class that is in neither ground truth nor prediction out of the mean (NaN per class); a class
    in only one of them scores 0. The data covers all three cases.
    """
    rng = np.random.default_rng(4)
    absent, gt_only, pred_only = 16, 15, 12  # train, bus, rider
    gt_train_ids = [t for t in range(NUM_CLASSES) if t not in (absent, pred_only)]
    pred_train_ids = [t for t in range(NUM_CLASSES) if t not in (absent, gt_only)]
    ignored_label_ids = [i for i in range(34) if i not in TRAIN_ID_TO_LABEL_ID]
    city, shape = "testcity", (64, 128)

    ours = ConfusionMatrix()
    gt_paths = []
    for frame in range(4):
        gt_label_ids = np.array(TRAIN_ID_TO_LABEL_ID, dtype=np.uint8)[rng.choice(gt_train_ids, shape)]
        ignored = rng.random(shape) < 0.2
        gt_label_ids[ignored] = rng.choice(ignored_label_ids, int(ignored.sum()))
        gt_train = label_ids_to_train_ids(gt_label_ids)
        pred = np.where((rng.random(shape) < 0.6) & (gt_train < NUM_CLASSES), gt_train,
                        rng.choice(pred_train_ids, shape))
        pred[pred == gt_only] = pred_train_ids[0]
        ours.update(pred, gt_train)

        stem = f"{city}_000000_{frame:06d}"
        gt_path = tmp_path / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png"
        _write_png(gt_path, gt_label_ids)
        _write_png(tmp_path / "results" / f"{stem}_pred_labelIds.png", train_ids_to_label_ids(pred))
        gt_paths.append(str(gt_path))

    _, result = official_evaluator(tmp_path, tmp_path / "results", gt_paths)

    train_label_ids = list(TRAIN_ID_TO_LABEL_ID)
    their_counts = np.array(result["confMatrix"])[np.ix_(train_label_ids, train_label_ids)]
    np.testing.assert_array_equal(ours.counts, their_counts)
    their_iou = 100 * np.array([result["classScores"][name] for name in CLASS_NAMES])
    np.testing.assert_allclose(ours.iou(), their_iou, atol=0.01)  # NaN must match NaN
    assert np.isnan(ours.iou()[absent]) and ours.iou()[gt_only] == 0 and ours.iou()[pred_only] == 0
    assert 30 < ours.mean_iou() < 90
    assert ours.mean_iou() == pytest.approx(100 * result["averageScoreClasses"], abs=0.01)
