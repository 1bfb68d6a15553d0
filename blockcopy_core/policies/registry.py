"""Policies by name: ``block_policy`` in the settings picks a factory here; ``register_policy`` adds one."""

from __future__ import annotations

from collections.abc import Callable

from ..settings import BlockCopySettings
from .base import BlockPolicy
from .fixed import AllPolicy, NonePolicy, RandomPolicy
from .learned import LearnedPolicy

PolicyFactory = Callable[[BlockCopySettings], BlockPolicy]

POLICIES: dict[str, PolicyFactory] = {
    "all": lambda settings: AllPolicy(),
    "none": lambda settings: NonePolicy(),
    "random": lambda settings: RandomPolicy(0.5),
    "rl_semseg": LearnedPolicy,
}


POLICIES_THAT_LEARN = frozenset({"rl_semseg"})  # their state (network, optimiser) changes as they run


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make ``block_policy=name`` build ``factory(settings)``."""
    POLICIES[name] = factory


def build_policy(settings: BlockCopySettings) -> BlockPolicy:
    """The policy named by ``settings.block_policy``."""
    name = settings.block_policy
    if name == "static":
        raise ValueError("block_policy 'static' means the plain dense model: run it without BlockCopyModel")
    if name not in POLICIES:
        raise ValueError(f"unknown block_policy {name!r}; registered: {sorted(POLICIES)}")
    return POLICIES[name](settings)
