"""BlockCopySettings: every BlockCopy option in one place, with its default, its meaning and its validation.

The field names are the original release's argparser keys (``block_size`` for ``--block-size``), so a dict of
those keys becomes settings with :meth:`BlockCopySettings.from_dict`, and the job's flags are generated from the
fields by :func:`add_arguments`: defaults, help texts and valid ranges are written here only.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

__all__ = ["POLICY_NETS", "BlockCopySettings", "add_arguments"]


class Rule(NamedTuple):
    """What a valid value is, as a test and in words (for the error message)."""

    test: Callable[[Any], bool]
    words: str


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


NAME = Rule(lambda v: isinstance(v, str) and bool(v), "a policy name")
POSITIVE_INT = Rule(lambda v: _is_int(v) and v > 0, "a positive int")
FRACTION = Rule(lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
MOMENTUM = Rule(lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")
NON_NEGATIVE = Rule(lambda v: _is_number(v) and v >= 0, "a number >= 0")
NON_NEGATIVE_OR_NONE = Rule(lambda v: v is None or (_is_number(v) and v >= 0), "a number >= 0 (or None: the default)")
DEFAULT_LEARNING_RATES = {"paper": 1e-4, "compact": 1e-3}  # the release's for its network; ten times it for the
# compact one, which at 1e-4 learns too slowly for a short warm-up (docs/benchmarks.md, "The compact policy network")
POLICY_NETS = tuple(DEFAULT_LEARNING_RATES)  # the networks of policies/nets.py, each with its learning rate
POLICY_NET = Rule(lambda v: v in POLICY_NETS, f"one of {', '.join(POLICY_NETS)}")
FLAG = Rule(lambda v: isinstance(v, bool), "a bool")


def _option(default: Any, rule: Rule, help: str, kind: type | None = None) -> Any:
    """A setting: its default, rule and help; ``kind`` types its flag where the default (None) cannot."""
    return field(default=default, metadata={"rule": rule, "help": help, "kind": kind or type(default)})


@dataclass(frozen=True)
class BlockCopySettings:
    """How BlockCopy decides which blocks run, and how the learned policy learns (the release's defaults)."""

    block_policy: str = _option("rl_semseg", NAME, "who picks the executed blocks: all, none, random (each block "
                                                   "with p=0.5) or the learned rl_semseg")
    block_size: int = _option(128, POSITIVE_INT, "block side in input pixels (the network's strides must divide it)")
    block_target: float = _option(0.5, FRACTION, "rl_semseg only: target fraction of executed blocks")
    block_num_classes: int = _option(19, POSITIVE_INT, "rl_semseg only: class maps of the segmentation output")
    block_train_interval: int = _option(4, POSITIVE_INT, "rl_semseg only: frames per policy update")
    block_complexity_weight: float = _option(5.0, NON_NEGATIVE, "rl_semseg only: weight of the reward that steers "
                                                                "the running execution fraction to the target")
    block_optim_lr: float | None = _option(None, NON_NEGATIVE_OR_NONE, "rl_semseg only: RMSprop learning rate "
                                           "(0: frozen); default: 1e-4 with the paper network (the release's), "
                                           "1e-3 with the compact one", kind=float)
    block_optim_wd: float = _option(1e-3, NON_NEGATIVE, "rl_semseg only: RMSprop weight decay")
    block_optim_momentum: float = _option(0.0, MOMENTUM, "rl_semseg only: RMSprop momentum")
    block_cost_momentum: float = _option(0.9, MOMENTUM, "rl_semseg only: momentum of the running execution "
                                                        "fraction")
    block_policy_net: str = _option("compact", POLICY_NET, "rl_semseg only: its network: compact (8 input pixels "
                                                          "per block, 0.095 GMACs at an 8x16 grid) or paper (the "
                                                          "release's, 32 per block, 7.5 GMACs)")
    block_policy_verbose: bool = _option(False, FLAG, "rl_semseg only: log the policy's statistics every frame")

    def __post_init__(self) -> None:
        for f in fields(self):
            value, rule = getattr(self, f.name), f.metadata["rule"]
            if not rule.test(value):
                raise ValueError(f"{f.name} must be {rule.words}, got {value!r}")

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> BlockCopySettings:
        """Settings from the original release's argparser keys (a missing key keeps its default); an unknown key
        is an error, since a typo would otherwise go unnoticed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown BlockCopy settings {unknown}; known: {sorted(known)}")
        return cls(**settings)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BlockCopySettings:
        """Settings from the flags :func:`add_arguments` added."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    @property
    def optim_lr(self) -> float:
        """The learning rate the policy uses: ``block_optim_lr``, or its network's default when that is None."""
        return DEFAULT_LEARNING_RATES[self.block_policy_net] if self.block_optim_lr is None else self.block_optim_lr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_arguments(group: argparse._ActionsContainer, *, defaults: Mapping[str, Any] | None = None,
                  choices: Mapping[str, tuple] | None = None, help: Mapping[str, str] | None = None) -> None:
    """One ``--block-...`` flag per setting, typed, defaulted and explained from the fields. ``defaults``,
    ``choices`` and ``help`` override them for a command that differs (the job's policy adds ``static``)."""
    defaults, choices, help = defaults or {}, choices or {}, help or {}
    for f in fields(BlockCopySettings):
        flag = "--" + f.name.replace("_", "-")
        text = help.get(f.name, f.metadata["help"])
        if isinstance(f.default, bool):
            group.add_argument(flag, action="store_true", help=text)
        else:
            group.add_argument(flag, type=f.metadata["kind"], default=defaults.get(f.name, f.default),
                               choices=choices.get(f.name), help=text)
