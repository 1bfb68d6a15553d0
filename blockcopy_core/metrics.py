"""Streaming confusion matrix and the Cityscapes segmentation scores derived from it.

A clip's worker updates one `ConfusionMatrix` frame by frame, ships its 361 counts to the driver
(`to_flat`), and the driver sums them (`merge`) before computing IoU: mIoU is taken over the pixels of the
whole data set, not averaged per image, exactly as the official Cityscapes evaluator does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from blockcopy_core.constants import CLASS_NAMES, NUM_CLASSES

ClassIds = np.ndarray | torch.Tensor


class ConfusionMatrix:
    """Pixel counts `counts[gt, pred]` (int64, rows = ground truth, columns = prediction).

    Ground-truth values outside 0..num_classes-1 (255, or any other) are ignored; a prediction outside that
    range is an error, since a model's argmax can never produce one.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: ClassIds, label: ClassIds) -> None:
        """Add the pixels of `pred` and `label` (integer arrays or tensors of one shape, any leading dims).

        A torch `pred` is counted on its own device (a CUDA prediction is not copied back to the host);
        otherwise both are counted with numpy.
        """
        if isinstance(pred, torch.Tensor):
            label = torch.as_tensor(label, device=pred.device)
        else:
            pred = np.asarray(pred)
            label = label.cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        _check_integer_dtype(pred.dtype, "prediction")
        _check_integer_dtype(label.dtype, "label")
        if tuple(pred.shape) != tuple(label.shape):
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(label.shape)}"
            )
        if math.prod(pred.shape):
            low, high = int(pred.min()), int(pred.max())
            if low < 0 or high >= self.num_classes:
                bad = low if low < 0 else high
                raise ValueError(f"prediction value {bad} is outside the classes 0..{self.num_classes - 1}")
        # Ignored pixels are counted in an extra bin that is dropped: cheaper than boolean indexing.
        c = self.num_classes
        ignored = (label < 0) | (label >= c)
        if isinstance(pred, torch.Tensor):
            index = label.long() * c + pred.long()
            index.masked_fill_(ignored, c * c)
            flat = torch.bincount(index.flatten(), minlength=c * c + 1)[: c * c].cpu().numpy()
        else:
            index = label.astype(np.int64) * c + pred.astype(np.int64, copy=False)
            index[ignored] = c * c
            flat = np.bincount(index.ravel(), minlength=c * c + 1)[: c * c]
        self.counts += flat.reshape(c, c)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add `other`'s counts into this matrix (in place) and return self."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix into a {self.num_classes}-class matrix"
            )
        self.counts += other.counts
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return ConfusionMatrix(self.num_classes).merge(self).merge(other)

    def to_flat(self) -> list[int]:
        """The counts row-major as plain ints (num_classes**2 of them), e.g. for a Parquet list column."""
        return self.counts.ravel().tolist()

    @classmethod
    def from_flat(cls, values: list[int] | np.ndarray, num_classes: int = NUM_CLASSES) -> ConfusionMatrix:
        """Rebuild a matrix from `to_flat`'s output."""
        matrix = cls(num_classes)
        flat = np.asarray(values)
        if flat.shape != (matrix.counts.size,):
            raise ValueError(
                f"expected {matrix.counts.size} counts for {num_classes} classes, got shape {flat.shape}"
            )
        if flat.dtype.kind not in "iu":
            raise ValueError(f"counts must be integers, got dtype {flat.dtype}")
        if flat.min() < 0:
            raise ValueError(f"counts must be non-negative, got {flat.min()}")
        matrix.counts += flat.astype(np.int64).reshape(matrix.counts.shape)
        return matrix

    def iou(self) -> np.ndarray:
        """Per-class IoU in percent, TP / (TP + FP + FN).

        NaN for a class in neither ground truth nor prediction; the Cityscapes evaluator returns NaN there too
        and leaves such classes out of its mean, as `mean_iou` does.
        """
        true_positive = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(axis=0) + self.counts.sum(axis=1) - true_positive
        result = np.full(self.num_classes, np.nan)
        np.divide(100.0 * true_positive, union, out=result, where=union > 0)
        return result

    def mean_iou(self) -> float:
        """Mean of the defined per-class IoUs, in percent (NaN when nothing was counted)."""
        per_class = self.iou()
        defined = per_class[~np.isnan(per_class)]
        return float(defined.mean()) if defined.size else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels over counted pixels, in percent (NaN when nothing was counted)."""
        total = self.counts.sum()
        return float(100.0 * np.trace(self.counts) / total) if total else float("nan")


def _check_integer_dtype(dtype: np.dtype | torch.dtype, what: str) -> None:
    """Class ids must be integers: a float or bool array here is almost always a caller's mistake."""
    if isinstance(dtype, torch.dtype):
        is_integer = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
    else:
        is_integer = dtype.kind in "iu"
    if not is_integer:
        raise ValueError(f"{what} must hold integer class ids, got dtype {dtype}")


def format_iou_table(matrix: ConfusionMatrix) -> str:
    """One line per Cityscapes class with its IoU, then mIoU and pixel accuracy, for logs."""
    if matrix.num_classes != len(CLASS_NAMES):
        raise ValueError(f"format_iou_table needs {len(CLASS_NAMES)} classes, got {matrix.num_classes}")
    width = max(len(name) for name in (*CLASS_NAMES, "pixel accuracy"))
    lines = [f"{name:<{width}}  {value:6.2f}" for name, value in zip(CLASS_NAMES, matrix.iou(), strict=True)]
    lines.append(f"{'mIoU':<{width}}  {matrix.mean_iou():6.2f}")
    lines.append(f"{'pixel accuracy':<{width}}  {matrix.pixel_accuracy():6.2f}")
    return "\n".join(lines)
