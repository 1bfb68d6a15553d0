"""Loading SwiftNet weights from the published checkpoint format."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .swiftnet import BACKBONES, build_swiftnet

SYNTHETIC_CHECKPOINT = Path(__file__).resolve().parents[2] / "pretrained" / "swiftnet_rn18_synthetic.pth"
"""SwiftNet-RN18 trained on the synthetic street video (docs/training.md); the default for synthetic clips."""


NAMES_SHOWN = 5
"""How many names of broken tensors an error message lists (then a count of the rest)."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, not fitting the model (every missing, unexpected and
    mis-shaped key), or holding NaN/inf weights."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read ``{"state_dict": ..., "epoch", "best_acc"}`` or a bare state dict, safely (``weights_only``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # unpickling / zip errors: say which file, in one line
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if reason.startswith("Weights only load failed"):
            reason = "not a PyTorch file of tensors (a file of another kind, or one pickling Python objects)"
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from exc
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    # Checkpoints saved from nn.DataParallel prefix every key with "module.".
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one CheckpointError listing all key and shape mismatches between ``model`` and ``state``, or
    naming the tensors of ``state`` that hold NaN or inf."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    problems = [
        f"{len(keys)} {title} ({', '.join(keys[:NAMES_SHOWN])}{', ...' if len(keys) > NAMES_SHOWN else ''})"
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped))
        if keys
    ]
    if problems:
        guess = identify(state)
        looks_like = f"; it looks like {guess}" if guess else ""
        raise CheckpointError(f"{source} does not match the model{looks_like}: {'; '.join(problems)}")
    check_finite(state, source)


def identify(state: dict[str, torch.Tensor]) -> str | None:
    """What ``state`` holds when it is one of our SwiftNets: "a SwiftNet resnet50 with 19 classes" (else None)."""
    classes = state.get("logits.conv.bias")
    if classes is None or classes.dim() != 1:
        return None
    for backbone in BACKBONES:
        with torch.device("meta"):  # shapes only, no memory
            expected = build_swiftnet(backbone, classes.numel()).state_dict()
        if expected.keys() == state.keys() and all(expected[k].shape == v.shape for k, v in state.items()):
            return f"a SwiftNet {backbone} with {classes.numel()} classes (--model-backbone {backbone} " \
                   f"--num-classes {classes.numel()})"
    return None


def check_finite(state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise a CheckpointError naming the floating-point tensors that hold NaN or inf.

    Such weights run to the end and report a meaningless mIoU, so they are refused before any compute.
    """
    broken = [key for key, value in state.items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:
        names = ", ".join(broken[:NAMES_SHOWN])
        rest = f" and {len(broken) - NAMES_SHOWN} more" if len(broken) > NAMES_SHOWN else ""
        raise CheckpointError(f"{source}: {len(broken)} of {len(state)} tensors hold NaN or inf: {names}{rest}")


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights from ``path`` into ``model`` strictly; returns the model."""
    state = read_state_dict(path)
    check_state_dict(model, state, source=str(path))
    model.load_state_dict(state, strict=True)
    return model
