"""Every preset command documented in docs/presets.md is accepted by the job and sets what its name says."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blockcopy_core.pipeline.cli import parse_args

PRESETS = Path(__file__).resolve().parents[1] / "docs" / "presets.md"
ROW = re.compile(r"^\| (RN18|RN50) (static|random|rl05) (accuracy|speed) \| `python -m jobs\.evaluate ([^`]+)` \|$")


def presets() -> list[tuple[str, str, str, str, list[str]]]:
    rows, source = [], None
    for line in PRESETS.read_text().splitlines():
        if line.startswith("## "):
            source = "cityscapes" if "Cityscapes" in line else "synthetic"
        if match := ROW.match(line):
            backbone, policy, mode, flags = match.groups()
            rows.append((source, backbone, policy, mode, shlex.split(flags)))
    return rows


def test_every_combination_is_documented_for_both_sources():
    combos = {(source, backbone, policy, mode) for source, backbone, policy, mode, _ in presets()}
    assert len(combos) == len(presets()) == 2 * 2 * 3 * 2


@pytest.mark.parametrize(("source", "backbone", "policy", "mode", "flags"), presets(),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_preset_parses_and_matches_its_name(source, backbone, policy, mode, flags):
    args = parse_args(flags)
    assert args.data == source
    assert args.model_backbone == {"RN18": "resnet18", "RN50": "resnet50"}[backbone]
    assert args.block_policy == {"static": "static", "random": "random", "rl05": "rl_semseg"}[policy]
    assert args.fast == (mode == "speed")
    expected_size = 128 if source == "cityscapes" else 64
    if policy != "static":
        assert args.block_size == expected_size
    if policy == "rl05":
        assert args.block_target == 0.5 and args.num_clips_warmup > 0
    if source == "synthetic":
        assert args.res == 512 and args.num_clips_eval == (8 if mode == "speed" else 40)
    assert args.report_dir.startswith("runs/")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check would run")
def test_gpu_check_refuses_without_a_gpu_in_one_line():
    script = PRESETS.parents[1] / "scripts" / "gpu_check.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == "error: no CUDA device: this check needs a GPU"
