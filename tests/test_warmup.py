"""The learned policy's warm-up fits its source, never uses evaluation clips unless asked, and continues after an
interruption from its last saved state."""

from __future__ import annotations

import logging

import pytest
import torch

from blockcopy_core.data import build_clips
from blockcopy_core.data.synthetic import export_demo
from blockcopy_core.pipeline import job, warmup
from blockcopy_core.pipeline.cli import parse_args
from jobs import evaluate

RL = ["--executor", "inline", "--block-policy", "rl_semseg", "--block-size", "32", "--res", "64",
      "--clip-length", "2", "--prefetch", "0", "--seed", "4"]


@pytest.fixture
def demo(tmp_path):
    """A folder of 3 clips of 2 frames."""
    export_demo(tmp_path / "demo", build_clips("synthetic", clip_length=2, num_clips=3, seed=1, height=32, width=64))
    return ["--demo-dir", str(tmp_path / "demo"), "--random-weights", "--clip-length", "2"]


def warmup_ids(argv: list[str]) -> tuple[list[str], list[str]]:
    args = parse_args(argv)
    listed, _ = job.list_source(args, args.mode)
    eval_clips = job.make_clips(args, job.eval_count(args), listed)
    warm = job.make_warmup_clips(args, eval_clips, listed)
    return [clip.clip_id for clip in warm], [clip.clip_id for clip in eval_clips]


def test_synthetic_warmup_is_5_clips_per_evaluation_clip_of_its_own_range():
    warm, evaluated = warmup_ids(["--block-policy", "rl_semseg", "--num-clips-eval", "3", "--res", "64"])
    assert len(warm) == 15 and len(set(warm)) == 15 and not set(warm) & set(evaluated)


def test_a_folders_warmup_is_its_clips_that_are_not_evaluated(demo, caplog):
    warm, evaluated = warmup_ids([*demo, "--block-policy", "rl_semseg", "--num-clips-eval", "2"])
    assert warm == ["demo_00002"] and evaluated == ["demo_00000", "demo_00001"]
    with caplog.at_level(logging.INFO, logger="blockcopy"):
        warm, _ = warmup_ids([*demo, "--block-policy", "rl_semseg"])
    assert warm == [] and "no warm-up: every clip of this source is an evaluation clip" in caplog.text


def test_a_warmup_asked_for_on_a_source_without_other_clips_says_it_uses_the_evaluation_clips(demo, caplog):
    with caplog.at_level(logging.INFO, logger="blockcopy"):
        warm, evaluated = warmup_ids([*demo, "--block-policy", "rl_semseg", "--num-clips-warmup", "5"])
    assert len(warm) == 5 and set(warm) == set(evaluated)
    assert "warming up on the evaluation clips themselves" in caplog.text


def test_an_interrupted_warmup_continues_from_its_last_save(tmp_path, capsys, monkeypatch):
    # An update after every frame: a saved state then misses no pending loss (docs/reliability.md, 4).
    common = [*RL, "--num-clips-warmup", "4", "--num-clips-eval", "1", "--block-train-interval", "1"]
    assert evaluate.main([*common, "--report-dir", str(tmp_path / "undisturbed")]) == 0
    monkeypatch.setattr(warmup, "SAVE_EVERY_S", 0.0)  # save after every batch
    save = warmup.save

    def interrupted_after_two_batches(path, batches_done, policy):
        save(path, batches_done, policy)
        if batches_done == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(warmup, "save", interrupted_after_two_batches)
    report = tmp_path / "run"
    assert evaluate.main([*common, "--report-dir", str(report)]) == 3
    monkeypatch.setattr(warmup, "save", save)
    capsys.readouterr()
    assert evaluate.main([*common, "--report-dir", str(report), "--resume"]) == 0
    assert "warm-up continues after 2 of 4 batches" in capsys.readouterr().out
    # the resumed warm-up learned exactly what the undisturbed one did (and then the same evaluation clip)
    resumed, undisturbed = (torch.load(path / "policy.pt", weights_only=True) for path in (report, tmp_path /
                                                                                          "undisturbed"))
    assert resumed.keys() == undisturbed.keys()
    for key in ("running_cost", "frames_seen", "updates", "prob_executed_sum", "statistic_frames"):
        assert resumed[key] == undisturbed[key], key
    for name, weight in undisturbed["net"].items():
        assert torch.equal(resumed["net"][name], weight), name
