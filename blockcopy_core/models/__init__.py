"""SwiftNet segmentation models with ResNet encoders, checkpoint loading and inference folding."""

from .checkpoint import SYNTHETIC_CHECKPOINT, CheckpointError, check_state_dict, load_checkpoint, read_state_dict
from .fuse import fold_batchnorm
from .resnet import ResNet, build_resnet
from .swiftnet import BACKBONES, TOTAL_STRIDE, SwiftNet, build_swiftnet

__all__ = [
    "BACKBONES", "SYNTHETIC_CHECKPOINT", "TOTAL_STRIDE", "CheckpointError", "ResNet", "SwiftNet", "build_resnet",
    "build_swiftnet", "check_state_dict", "fold_batchnorm", "load_checkpoint", "read_state_dict",
]
