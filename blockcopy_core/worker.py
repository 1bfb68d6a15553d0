"""Building a clip runner from a small, picklable description: the same code serves inline runs and Ray actors.

The driver builds the network once (from a checkpoint, or seeded random weights) and hands its state dict to
every worker, so all workers hold identical weights and none needs the checkpoint file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .models import build_swiftnet, fold_batchnorm
from .runner import ClipRunner
from .visualize import FrameWriter, PredictionWriter


@dataclass(frozen=True)
class WorkerConfig:
    backbone: str = "resnet18"
    num_classes: int = 19
    block_settings: dict = field(default_factory=lambda: {"block_policy": "static", "block_size": 128})
    device: str | None = None  # None: cuda if available, else cpu
    half: bool = False  # float16 on GPU, bfloat16 on CPU
    res: int | None = None  # short side fed to the model; None keeps the frames' size
    measure: bool = True  # metrics and MAC counting (off in speed mode)
    workers: int = 0  # frames read ahead
    output_dir: str | None = None  # pictures and animations for people
    predictions_dir: str | None = None  # Cityscapes-format labelId PNGs
    seed: int = 0
    audit_every: int = 0  # compare with the dense model every K-th evaluated frame (0: never)

    @property
    def policy(self) -> str:
        return self.block_settings["block_policy"]

    @property
    def pad_multiple(self) -> int:
        """Frames are padded to this multiple: the network's stride, and the block grid for BlockCopy."""
        return 32 if self.policy == "static" else math.lcm(32, self.block_settings["block_size"])


def select_device(requested: str | None) -> torch.device:
    return torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))


def select_dtype(half: bool, device: torch.device) -> torch.dtype:
    if not half:
        return torch.float32
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def build_model(config: WorkerConfig, state_dict: dict[str, torch.Tensor], device: torch.device,
                dtype: torch.dtype) -> torch.nn.Module:
    """SwiftNet with ``state_dict`` loaded, BatchNorm folded, on ``device``; wrapped for BlockCopy policies."""
    model = build_swiftnet(config.backbone, config.num_classes)
    model.load_state_dict(state_dict, strict=True)
    model = fold_batchnorm(model).to(device, dtype)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    if config.policy == "static":
        return model
    from .blockcopy import BlockCopyModel

    return BlockCopyModel(model, config.block_settings)


def outputs(config: WorkerConfig) -> list:
    """Writers of pictures and prediction files the configuration asks for."""
    writers = []
    if config.output_dir:
        writers.append(FrameWriter(config.output_dir))
    if config.predictions_dir:
        writers.append(PredictionWriter(config.predictions_dir))
    return writers


def build_runner(config: WorkerConfig, state_dict: dict[str, torch.Tensor]) -> ClipRunner:
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    dtype = select_dtype(config.half, device)
    model = build_model(config, state_dict, device, dtype)
    return ClipRunner(model, device, dtype, res=config.res, pad_multiple=config.pad_multiple,
                      measure=config.measure, workers=config.workers, channels_last=device.type == "cpu",
                      outputs=outputs(config), audit_every=config.audit_every,
                      num_classes=config.num_classes)
