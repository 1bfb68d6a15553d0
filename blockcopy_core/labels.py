"""Conversions between Cityscapes labelIds (dataset PNGs, evaluator input) and trainIds (model classes 0..18).

All are 256-entry lookup tables applied with one numpy indexing operation.
"""

from __future__ import annotations

import numpy as np

from blockcopy_core.constants import IGNORE_INDEX, NUM_CLASSES, PALETTE, TRAIN_ID_TO_LABEL_ID

_LABEL_TO_TRAIN = np.full(256, IGNORE_INDEX, dtype=np.uint8)
_LABEL_TO_TRAIN[list(TRAIN_ID_TO_LABEL_ID)] = np.arange(NUM_CLASSES)

_UNLABELED_LABEL_ID = 0
_TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)
_TRAIN_TO_LABEL[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
_TRAIN_TO_LABEL[IGNORE_INDEX] = _UNLABELED_LABEL_ID

_TRAIN_TO_COLOUR = np.zeros((256, 3), dtype=np.uint8)
_TRAIN_TO_COLOUR[:NUM_CLASSES] = PALETTE


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map labelIds to trainIds (uint8, same shape); every labelId without a trainId becomes 255."""
    array = _integer_array(label_ids, "labelIds")
    if array.dtype != np.uint8:
        # Anything outside 0..255 has no trainId, like labelId 255 itself (which is not a train label).
        array = np.where((array >= 0) & (array <= 255), array, 255)
    return _LABEL_TO_TRAIN[array]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map trainIds 0..18 to labelIds (uint8, same shape), e.g. for the prediction PNGs of the evaluator.

    255 (ignore) becomes labelId 0 ("unlabeled"); any other value outside 0..18 is a ValueError.
    """
    array = _integer_array(train_ids, "trainIds")
    known = ((array >= 0) & (array < NUM_CLASSES)) | (array == IGNORE_INDEX)
    if not known.all():
        bad = array[~known][0]
        raise ValueError(f"trainId {bad} is neither a class 0..{NUM_CLASSES - 1} nor {IGNORE_INDEX}")
    return _TRAIN_TO_LABEL[array]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """RGB image (shape + (3,), uint8) in the Cityscapes palette; values outside 0..18 are black."""
    array = _integer_array(train_ids, "trainIds")
    if array.dtype != np.uint8:
        array = np.where((array >= 0) & (array < NUM_CLASSES), array, IGNORE_INDEX)
    return _TRAIN_TO_COLOUR[array]


def _integer_array(values: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{what} must be an integer array, got dtype {array.dtype}")
    return array
