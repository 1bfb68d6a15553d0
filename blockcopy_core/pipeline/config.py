"""Building a clip runner from a small, picklable description: the same code serves inline runs and Ray actors.

The driver builds the network once (from a checkpoint, or seeded random weights) and hands its state dict to
every executor, so all runners hold identical weights and none needs the checkpoint file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..allocator import keep_freed_memory
from ..blockcopy import BlockCopyModel
from ..models import TOTAL_STRIDE, build_swiftnet, fold_batchnorm
from ..settings import BlockCopySettings
from .runner import ClipRunner, FrameOutput
from .video_output import VideoOutputWriter
from .visualize import FrameWriter, PredictionWriter


@dataclass(frozen=True)
class RunnerConfig:
    """Everything a clip runner is built from (the weights travel separately)."""

    backbone: str = "resnet18"
    # block_policy "static" runs the plain dense model; block_num_classes is also SwiftNet's number of classes
    blockcopy: BlockCopySettings = field(default_factory=lambda: BlockCopySettings(block_policy="static"))
    device: str | None = None  # None: cuda if available, else cpu
    half: bool = False  # float16 on GPU, bfloat16 on CPU
    res: int | None = None  # short side fed to the model; None keeps the frames' size
    measure: bool = True  # metrics and MAC counting (off in speed mode)
    prefetch: int = 0  # frames read ahead of the model
    output_dir: str | None = None  # pictures and animations for people
    predictions_dir: str | None = None  # Cityscapes-format labelId PNGs
    seed: int = 0
    audit_every: int = 0  # compare with the dense model every K-th evaluated frame (0: never)

    @property
    def policy(self) -> str:
        return self.blockcopy.block_policy

    @property
    def num_classes(self) -> int:
        return self.blockcopy.block_num_classes

    @property
    def pad_multiple(self) -> int:
        """Frames are padded to this multiple: the network's stride, and the block grid for BlockCopy."""
        return TOTAL_STRIDE if self.policy == "static" else math.lcm(TOTAL_STRIDE, self.blockcopy.block_size)


def select_device(requested: str | None) -> torch.device:
    return torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))


def select_dtype(half: bool, device: torch.device) -> torch.dtype:
    if not half:
        return torch.float32
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def build_model(config: RunnerConfig, state_dict: dict[str, torch.Tensor], device: torch.device,
                dtype: torch.dtype) -> torch.nn.Module:
    """SwiftNet with ``state_dict`` loaded, BatchNorm folded, on ``device``; wrapped for BlockCopy policies."""
    model = build_swiftnet(config.backbone, config.num_classes)
    model.load_state_dict(state_dict, strict=True)
    model = fold_batchnorm(model).to(device, dtype).to(memory_format=torch.channels_last)
    if config.policy == "static":
        return model
    return BlockCopyModel(model, config.blockcopy)


def outputs(config: RunnerConfig) -> list[FrameOutput]:
    """Writers of pictures and prediction files the configuration asks for."""
    writers = []
    if config.output_dir:  # pictures and a GIF per clip; an overlay video per video file
        writers += [FrameWriter(config.output_dir), VideoOutputWriter(config.output_dir)]
    if config.predictions_dir:
        writers.append(PredictionWriter(config.predictions_dir))
    return writers


def build_runner(config: RunnerConfig, state_dict: dict[str, torch.Tensor], actor: str = "inline",
                 node: str = "local") -> ClipRunner:
    """The runner of one executor (``actor`` on ``node`` names it in the results), in a process that keeps freed
    memory for the next frame (``allocator``)."""
    keep_freed_memory()
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    dtype = select_dtype(config.half, device)
    model = build_model(config, state_dict, device, dtype)
    return ClipRunner(model, device, dtype, res=config.res, pad_multiple=config.pad_multiple,
                      measure=config.measure, prefetch_depth=config.prefetch, channels_last=True,
                      outputs=outputs(config), audit_every=config.audit_every, num_classes=config.num_classes,
                      actor=actor, node=node, seed=config.seed)
