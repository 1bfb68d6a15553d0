"""Bad input is refused early and clearly: broken weights, a missing policy file, a frame that changes size."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from blockcopy_core.data import FrameReadError, build_clips, iter_frames
from blockcopy_core.models import build_swiftnet
from blockcopy_core.pipeline.cli import parse_args
from blockcopy_core.reporting import read_summary, read_table
from jobs import evaluate


def _frames(folder, sizes):
    """Demo frames f1.png, f2.png, ... of the given (height, width) sizes."""
    folder.mkdir()
    for index, size in enumerate(sizes, 1):
        Image.fromarray(np.full((*size, 3), 100, np.uint8)).save(folder / f"f{index}.png")
    return folder


def test_job_with_non_finite_weights_is_refused_before_the_report_folder_is_made(tmp_path, capsys):
    state = build_swiftnet("resnet18").state_dict()
    state["logits.conv.weight"][0, 0] = float("nan")
    torch.save({"state_dict": state}, tmp_path / "nan.pth")
    report = tmp_path / "run"
    code = evaluate.main(["--executor", "inline", "--model-checkpoint", str(tmp_path / "nan.pth"), "--res", "64",
                          "--num-clips-eval", "1", "--clip-length", "2", "--report-dir", str(report)])
    assert code == 2 and not report.exists()  # so the same command with a good checkpoint can use the folder
    assert re.search(r"ERROR:blockcopy:error: .*nan\.pth: 1 of \d+ tensors hold NaN or inf: logits\.conv\.weight\n",
                     capsys.readouterr().out)


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_missing_policy_checkpoint_is_refused_naming_it(tmp_path, capsys, kind):
    path = tmp_path / "policy.pt"
    if kind == "folder":
        path.mkdir()
    with pytest.raises(SystemExit) as info:
        parse_args(["--block-policy", "rl_semseg", "--policy-checkpoint", str(path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: --policy-checkpoint {path}: no such file\n")


def test_existing_policy_checkpoint_is_accepted(tmp_path):
    (tmp_path / "policy.pt").write_bytes(b"state")
    args = parse_args(["--block-policy", "rl_semseg", "--policy-checkpoint", str(tmp_path / "policy.pt")])
    assert args.policy_checkpoint == str(tmp_path / "policy.pt")


def test_frame_of_another_size_fails_there_naming_both_files(tmp_path):
    folder = _frames(tmp_path / "demo", [(8, 16), (8, 16), (8, 12)])
    (clip,) = build_clips("demo", demo_dir=folder)
    frames = iter_frames(clip)
    assert [next(frames).name for _ in range(2)] == ["f1", "f2"]
    with pytest.raises(FrameReadError) as info:
        next(frames)
    assert info.value.path == str(folder / "f3.png")
    assert str(info.value) == (f"cannot read {folder / 'f3.png'}: frame size 8x12 (height x width) differs from "
                               f"the clip's first frame, 8x16 ({folder / 'f1.png'})")


def test_frame_of_another_size_fails_its_clip_only(tmp_path, capsys):
    folder = _frames(tmp_path / "demo", [(64, 128), (64, 96), (64, 128), (64, 128)])
    report = tmp_path / "run"
    code = evaluate.main(["--executor", "inline", "--demo-dir", str(folder), "--random-weights", "--clip-length", "2",
                          "--report-dir", str(report)])
    assert code == 1
    assert "f2.png: frame size 64x96 (height x width) differs from the clip's first frame" in capsys.readouterr().out
    failed = [row for row in read_table(report, "clips").to_pylist() if row["status"] != "ok"]
    assert len(failed) == 1 and "f2.png: frame size 64x96" in failed[0]["error"]
    summary = read_summary(report)
    assert (summary["num_clips"], summary["num_clips_failed"], summary["num_frames"]) == (2, 1, 2)


@pytest.mark.parametrize(("size", "message"), [
    ("7", "--block-size 7: SwiftNet needs a multiple of its total stride 32 (for these 64x128 frames: 32, 64)"),
    ("256", "--block-size 256 is larger than the 64x128 frames the model sees: they would be padded to 256x256 "
            "(+700% pixels to compute); use at most 64 (valid: 32, 64)"),
])
def test_a_block_size_that_cannot_cut_the_frames_is_refused_before_compute(tmp_path, capsys, size, message):
    report = tmp_path / "run"
    code = evaluate.main(["--executor", "inline", "--res", "64", "--block-policy", "random", "--block-size", size,
                          "--num-clips-eval", "1", "--clip-length", "2", "--report-dir", str(report)])
    assert code == 2 and f"ERROR:blockcopy:error: {message}\n" in capsys.readouterr().out and not report.exists()


def test_a_block_size_that_pads_much_is_warned_with_its_cost(tmp_path, capsys):
    assert evaluate.main(["--executor", "inline", "--res", "128", "--block-policy", "random", "--block-size", "96",
                          "--num-clips-eval", "1", "--clip-length", "2", "--report-dir", str(tmp_path)]) == 0
    assert ("--block-size 96 pads the 128x256 frames to 192x288: +69% pixels to compute (32, 64, 128 divide them "
            "evenly)") in capsys.readouterr().out
