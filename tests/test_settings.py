"""BlockCopySettings: the one place for BlockCopy's defaults, meanings and validation, and the flags made from it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from blockcopy_core import BlockCopyModel, BlockCopySettings
from blockcopy_core.pipeline.cli import build_parser, parse_args

RELEASE_DEFAULTS = {  # the original release's argparser
    "block_policy": "rl_semseg", "block_size": 128, "block_target": 0.5, "block_num_classes": 19,
    "block_train_interval": 4, "block_complexity_weight": 5.0, "block_optim_lr": 1e-4, "block_optim_wd": 1e-3,
    "block_optim_momentum": 0.0, "block_cost_momentum": 0.9, "block_policy_verbose": False,
}


def test_defaults_are_the_releases():
    # the release's policy network is block_policy_net="paper" with its learning rate; the default is the compact
    # one, whose learning rate (block_optim_lr unset) is ten times higher
    assert BlockCopySettings().to_dict() == {**RELEASE_DEFAULTS, "block_policy_net": "compact", "block_optim_lr": None}
    assert BlockCopySettings.from_dict({}) == BlockCopySettings()
    assert BlockCopySettings().optim_lr == 1e-3
    assert BlockCopySettings(block_policy_net="paper").optim_lr == RELEASE_DEFAULTS["block_optim_lr"] == 1e-4
    assert BlockCopySettings(block_optim_lr=0.0).optim_lr == 0.0  # given: as given, 0 freezes the policy


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("block_size", 0, "block_size must be a positive int, got 0"),
    ("block_size", 64.0, "block_size must be a positive int"),
    ("block_size", True, "block_size must be a positive int"),
    ("block_target", 1.5, r"block_target must be a number in \[0, 1\]"),
    ("block_target", float("nan"), "block_target must be a number"),
    ("block_train_interval", 0, "block_train_interval must be a positive int"),
    ("block_optim_lr", -1e-4, "block_optim_lr must be a number >= 0"),
    ("block_cost_momentum", 1.0, r"block_cost_momentum must be a number in \[0, 1\)"),
    ("block_policy", "", "block_policy must be a policy name"),
    ("block_policy_verbose", "yes", "block_policy_verbose must be a bool"),
    ("block_policy_net", "resnet", "block_policy_net must be one of paper, compact, got 'resnet'"),
])
def test_a_bad_value_is_refused_with_the_reason(field, value, reason):
    with pytest.raises(ValueError, match=reason):
        BlockCopySettings(**{field: value})


def test_from_dict_takes_release_keys_and_refuses_unknown_ones():
    settings = BlockCopySettings.from_dict({"block_policy": "random", "block_size": 64})
    assert (settings.block_policy, settings.block_size, settings.block_target) == ("random", 64, 0.5)
    with pytest.raises(ValueError, match=r"unknown BlockCopy settings \['block_sise'\]"):
        BlockCopySettings.from_dict({"block_sise": 64})


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BlockCopySettings().block_size = 64


def test_the_wrapper_takes_settings_or_a_dict():
    net = torch.nn.Conv2d(3, 19, 1)
    by_object = BlockCopyModel(net, BlockCopySettings(block_policy="all", block_size=32))
    by_dict = BlockCopyModel(net, {"block_policy": "all", "block_size": 32})
    assert by_object.settings == by_dict.settings == BlockCopySettings(block_policy="all", block_size=32)


def test_job_flags_are_generated_from_the_fields():
    help_text = " ".join(build_parser().format_help().split())
    for field in dataclasses.fields(BlockCopySettings):
        if field.name != "block_num_classes":  # shown as --num-classes, the model's classes
            assert "--" + field.name.replace("_", "-") in help_text
    assert "rl_semseg only: target fraction of executed blocks" in help_text
    args = parse_args(["--block-policy", "random", "--block-size", "64", "--block-optim-lr", "0.001"])
    assert args.blockcopy == BlockCopySettings(block_policy="random", block_size=64, block_optim_lr=0.001)
    assert parse_args(["--block-policy-net", "paper"]).blockcopy.block_policy_net == "paper"
    assert parse_args([]).blockcopy.block_policy == "static"  # the job's default: the plain dense model


def test_job_refuses_a_bad_setting_naming_the_flag(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--block-size", "0"])
    assert "--block-size must be a positive int, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--block-target", "2"])
    assert "--block-target must be a number in [0, 1], got 2.0" in capsys.readouterr().err


def test_old_flag_spellings_still_work():
    args = parse_args(["--workers", "5", "--block-num-classes", "7"])
    assert args.prefetch == 5
    assert args.blockcopy.block_num_classes == 7
    assert parse_args(["--num-classes", "7"]).blockcopy.block_num_classes == 7
