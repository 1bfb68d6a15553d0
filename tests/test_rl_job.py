"""The evaluation job with the learned policy, on every data source and on Ray."""

import pytest

from blockcopy_core.data import build_clips
from blockcopy_core.data.synthetic import export_cityscapes, export_demo
from blockcopy_core.reporting import read_summary, read_table
from jobs import evaluate

RL = ["--block-policy", "rl_semseg", "--block-size", "32", "--block-target", "0.5", "--clip-length", "4",
      "--workers", "0", "--seed", "1"]
INLINE = ["--executor", "inline", *RL]


def test_synthetic_run_learns_and_writes_its_policy_file(tmp_path, capsys):
    report = tmp_path / "run"
    code = evaluate.main([*INLINE, "--res", "64", "--num-clips-warmup", "3", "--num-clips-eval", "2",
                          "--report-dir", str(report)])
    assert code == 0
    summary = read_summary(report)
    assert 0 < summary["exec_fraction"] < 1
    assert summary["policy_gmacs_per_frame"] > 0
    assert (report / "policy.pt").stat().st_size > 100_000
    clips = read_table(report, "clips").to_pylist()
    assert {r["phase"] for r in clips} == {"eval"}  # warm-up clips are not scored or recorded
    # a later run starts from that policy instead of warming up
    code = evaluate.main([*INLINE, "--res", "64", "--num-clips-warmup", "0", "--num-clips-eval", "1",
                          "--policy-checkpoint", str(report / "policy.pt"), "--report-dir", str(tmp_path / "again")])
    assert code == 0 and "policy state loaded from" in capsys.readouterr().out


def test_policy_checkpoint_for_a_fixed_policy_is_refused(tmp_path):
    (tmp_path / "policy.pt").write_bytes(b"x")
    with pytest.raises(SystemExit):
        evaluate.main(["--executor", "inline", "--block-policy", "random", "--policy-checkpoint",
                       str(tmp_path / "policy.pt")])


@pytest.mark.parametrize("source", ["cityscapes", "demo"])
def test_learned_policy_on_file_sources(tmp_path, source):
    clips = build_clips("synthetic", clip_length=4, num_clips=2, seed=2, height=64, width=128)
    if source == "cityscapes":
        export_cityscapes(tmp_path / "data", clips)
        data = ["--cityscapes-dir", str(tmp_path / "data")]
    else:
        export_demo(tmp_path / "data", clips)
        data = ["--demo-dir", str(tmp_path / "data")]
    code = evaluate.main([*INLINE, *data, "--random-weights", "--num-clips-warmup", "2",
                          "--report-dir", str(tmp_path / "run")])
    assert code == 0
    summary = read_summary(tmp_path / "run")
    assert summary["num_clips"] == 2 and summary["num_clips_failed"] == 0
    assert summary["exec_fraction"] < 1


def test_learned_policy_on_ray_actors(tmp_path):
    report = tmp_path / "run"
    code = evaluate.main([*RL, "--res", "64", "--num-clips-warmup", "2", "--num-clips-eval", "4", "--num-actors", "2",
                          "--cpus-per-actor", "1", "--report-dir", str(report)])
    assert code == 0
    rows = read_table(report, "clips").to_pylist()
    assert len(rows) == 4 and len({r["actor"] for r in rows}) == 2
    assert (report / "policy.pt").is_file()
