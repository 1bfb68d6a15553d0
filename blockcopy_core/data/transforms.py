"""Frame -> network input: resize to the working resolution, normalise, pad to the block grid.

Policy (see docs/data.md): ``res`` is the short side of the working resolution and the long side follows the
frame's aspect ratio (rounded), so res 1024 turns a 1024x2048 Cityscapes frame into 1024x2048 and res 512
into 512x1024. Images are resized bilinearly; labels never are (predictions are scored at the label's size).
Padding goes to the bottom and right, after normalisation, with zeros (= the dataset mean colour) for images
and 255 (ignore) for labels; the size before padding is returned so that predictions can be cropped back.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from blockcopy_core.constants import CITYSCAPES_MEAN, CITYSCAPES_STD

_MEAN = torch.tensor(CITYSCAPES_MEAN, dtype=torch.float32).view(3, 1, 1)
_STD = torch.tensor(CITYSCAPES_STD, dtype=torch.float32).view(3, 1, 1)


def target_size(height: int, width: int, res: int | None) -> tuple[int, int]:
    """(height, width) whose short side is ``res`` and whose aspect ratio is the frame's; ``None`` keeps it."""
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if res is None:
        return height, width
    if res <= 0:
        raise ValueError(f"res (short side) must be positive, got {res}")
    if height <= width:
        return res, max(1, round(width * res / height))
    return max(1, round(height * res / width)), res


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"target size must be positive, got {height}x{width}")
    return height, width


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an HxWx3 uint8 image to ``size`` = (height, width)."""
    height, width = _check_size(size)
    if image.shape[:2] == (height, width):
        return image
    return np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def check_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous, writable HxWx3 uint8 array (a copy only where it is not one); a clear error
    for anything else."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} array of shape {image.shape}")
    return np.require(image, requirements=("C", "W"))


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """...xHxWx3 uint8 RGB, on any device -> ...x3xHxW float32 ``(x / 255 - mean) / std`` there, channels_last
    (the channel dim is a view of the pixels' last one). One pass, ``x * (1 / (255 std)) - mean / std`` straight
    from the bytes (within 1 ulp of the three-step form); on a GPU the frames travel as uint8, a quarter of the
    bytes, and are normalised there."""
    if pixels.dtype != torch.uint8 or pixels.dim() < 3 or pixels.shape[-1] != 3:
        raise ValueError(f"expected ...xHxWx3 uint8 RGB pixels, got {pixels.dtype} of shape {tuple(pixels.shape)}")
    shift, scale = _affine(pixels.device)
    return torch.addcmul(shift, pixels.movedim(-1, -3), scale)


@functools.cache
def _affine(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(-mean / std, 1 / (255 std))`` as 3x1x1 float32 tensors on ``device`` (moved there once)."""
    return (-_MEAN / _STD).to(device), (1 / (255 * _STD)).to(device)


def normalize(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 3xHxW float32 ``(x / 255 - mean) / std`` with the Cityscapes statistics."""
    return normalize_pixels(torch.from_numpy(check_rgb(image)))


def pad_to_multiple(
    tensor: torch.Tensor, multiple: int, value: float = 0.0
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims (...xHxW) at the bottom/right up to multiples of ``multiple``.

    Returns the padded tensor and the original (H, W). ``value`` 0 suits normalised images (the mean
    colour); use 255 (ignore) for label maps.
    """
    if multiple < 1:
        raise ValueError(f"padding multiple must be >= 1, got {multiple}")
    if tensor.dim() < 2:
        raise ValueError(f"need a tensor with at least 2 dims (...xHxW), got shape {tuple(tensor.shape)}")
    height, width = tensor.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), value=value)
    return tensor, (height, width)
