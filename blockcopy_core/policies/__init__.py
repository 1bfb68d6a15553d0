"""Execution policies: which blocks of a frame batch to run (``static`` is no policy: the plain dense model)."""

from ..settings import POLICY_NETS
from .base import BlockPolicy, ClipState, grid_size
from .fixed import AllPolicy, NonePolicy, RandomPolicy
from .learned import LearnedPolicy
from .registry import POLICIES, POLICIES_THAT_LEARN, build_policy, register_policy

__all__ = [
    "POLICIES", "POLICIES_THAT_LEARN", "POLICY_NETS", "AllPolicy", "BlockPolicy", "ClipState", "LearnedPolicy",
    "NonePolicy", "RandomPolicy", "build_policy", "grid_size", "register_policy",
]
