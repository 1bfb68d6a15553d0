"""Training SwiftNet (supervised, on the synthetic video or Cityscapes): the loop and the ``jobs.train`` command."""

from .loop import TrainConfig, train, validate

__all__ = ["TrainConfig", "train", "validate"]
