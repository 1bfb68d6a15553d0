"""Training SwiftNet for semantic segmentation: sampled frames, augmentation, the loop and validation."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import IGNORE_INDEX
from ..data import Clip, iter_frames
from ..data.transforms import normalize, pad_to_multiple
from ..metrics import ConfusionMatrix

log = logging.getLogger("blockcopy")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 4000
    batch_size: int = 8
    crop: tuple[int, int] = (256, 512)  # (height, width) of training crops
    scale_range: tuple[float, float] = (0.5, 1.5)  # random rescaling of frames before cropping
    lr: float = 4e-4  # decoder; cosine decay to 1e-6
    encoder_lr_ratio: float = 0.25  # encoder lr = lr * ratio (SwiftNet's recipe for a pretrained encoder)
    weight_decay: float = 1e-4
    frames_per_clip: int = 4  # frames sampled from each rendered clip before moving to the next
    val_every: int = 500
    seed: int = 0


def augment(image: np.ndarray, label: np.ndarray, config: TrainConfig,
            rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale, crop (padding with ignore where the frame is smaller), horizontal flip, colour jitter."""
    x = normalize(image)[None]
    y = torch.from_numpy(label.astype(np.int64))[None, None].float()
    scale = rng.uniform(*config.scale_range)
    size = (max(8, round(x.shape[2] * scale)), max(8, round(x.shape[3] * scale)))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    y = F.interpolate(y, size=size, mode="nearest")
    crop_h, crop_w = config.crop
    pad_h, pad_w = max(0, crop_h - size[0]), max(0, crop_w - size[1])
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
        y = F.pad(y, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    top = rng.randint(0, x.shape[2] - crop_h)
    left = rng.randint(0, x.shape[3] - crop_w)
    x = x[..., top : top + crop_h, left : left + crop_w]
    y = y[..., top : top + crop_h, left : left + crop_w]
    if rng.random() < 0.5:
        x, y = x.flip(-1), y.flip(-1)
    x = x * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)  # contrast and brightness, in normalised units
    return x[0], y[0, 0].long()


def training_batches(clips: list[Clip], config: TrainConfig) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented batches: clips in a seeded random order, a few random frames from each."""
    rng = random.Random(config.seed)
    pool: list[tuple[torch.Tensor, torch.Tensor]] = []
    while True:
        for clip in rng.sample(clips, len(clips)):
            frames = [f for f in iter_frames(clip) if f.label is not None]
            for frame in rng.sample(frames, min(config.frames_per_clip, len(frames))):
                pool.append(augment(frame.image, frame.label, config, rng))
                if len(pool) == config.batch_size:
                    images, labels = zip(*pool, strict=True)
                    pool = []
                    yield torch.stack(images), torch.stack(labels)


@torch.inference_mode()
def validate(model: nn.Module, clips: list[Clip], num_classes: int = 19) -> ConfusionMatrix:
    """Confusion matrix of ``model`` over every labelled frame of ``clips`` (full frames, no augmentation)."""
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes)
    for clip in clips:
        for frame in iter_frames(clip):
            if frame.label is None:
                continue
            x, (height, width) = pad_to_multiple(normalize(frame.image)[None], 32)
            prediction = model(x)[0, :, :height, :width].argmax(0)
            confusion.update(prediction, torch.from_numpy(frame.label))
    model.train(was_training)
    return confusion


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    encoder = [p for name, p in model.named_parameters() if name.startswith("backbone.")]
    decoder = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
    return torch.optim.Adam([
        {"params": encoder, "lr": config.lr * config.encoder_lr_ratio,
         "weight_decay": config.weight_decay * config.encoder_lr_ratio},
        {"params": decoder, "lr": config.lr, "weight_decay": config.weight_decay},
    ], betas=(0.9, 0.99))


def save_checkpoint(model: nn.Module, path: str | Path, iteration: int, best_miou: float, half: bool) -> None:
    """The published checkpoint format ``{"state_dict", "epoch", "best_acc"}`` (float16 tensors if ``half``)."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.tmp")
    torch.save({"state_dict": state, "epoch": iteration, "best_acc": best_miou}, tmp)
    tmp.replace(path)


def train(model: nn.Module, train_clips: list[Clip], val_clips: list[Clip], config: TrainConfig,
          checkpoint: str | Path | None = None, half_checkpoint: bool = False) -> list[float]:
    """Train ``model`` in place; validate every ``val_every`` iterations and keep the best checkpoint.

    Returns the training loss of every iteration.
    """
    torch.manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    model.train()
    losses: list[float] = []
    best = -math.inf
    start = time.monotonic()
    batches = training_batches(train_clips, config)
    for iteration in range(1, config.iterations + 1):
        decay = 0.5 * (1 + math.cos(math.pi * (iteration - 1) / config.iterations))
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = 1e-6 + (base - 1e-6) * decay
        images, labels = next(batches)
        loss = F.cross_entropy(model(images), labels, ignore_index=IGNORE_INDEX)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at iteration {iteration}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if iteration % 20 == 0 or iteration == 1:
            elapsed = time.monotonic() - start
            log.info("iteration %d/%d  loss %.4f  lr %.2e  %.1f s/it", iteration, config.iterations,
                     float(np.mean(losses[-20:])), optimizer.param_groups[1]["lr"], elapsed / iteration)
        if val_clips and (iteration % config.val_every == 0 or iteration == config.iterations):
            miou = validate(model, val_clips).mean_iou()
            log.info("validation after %d iterations: mIoU %.2f (best %.2f)", iteration, miou, max(best, miou))
            if miou > best:
                best = miou
                if checkpoint:
                    save_checkpoint(model, checkpoint, iteration, miou, half_checkpoint)
    if checkpoint and not val_clips:
        save_checkpoint(model, checkpoint, config.iterations, float("nan"), half_checkpoint)
    return losses
