"""The accuracy / efficiency benchmark suite, end to end on tiny synthetic clips (inline job, no Ray)."""

import pytest

from blockcopy_core.benchmarks import accuracy as accuracy_benchmark
from blockcopy_core.reporting import read_summary
from jobs import benchmark

TINY = ["--num-clips", "2", "--clip-length", "3", "--res", "64", "--block-size", "32", "--targets", "0.5",
        "--num-clips-warmup", "1", "--executor", "inline", "--workers", "0"]


def test_suite_runs_every_policy_and_writes_tables_goals_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench"
    assert benchmark.main(["--suite", "accuracy", *TINY, "--speed-clips", "1", "--out", str(out)]) == 0
    for name in ("static", "random", "rl50"):
        accuracy, speed = read_summary(out / name), read_summary(out / "speed_64" / name)
        assert (accuracy["num_clips"], accuracy["num_frames"], accuracy["num_clips_failed"]) == (2, 6, 0)
        assert accuracy["config"]["block_size"] == 32 and accuracy["config"]["executor"] == "inline"
        assert speed["num_clips"] == 1 and speed["config"]["fast"]
    assert read_summary(out / "rl50")["config"]["num_clips_warmup"] == 1
    # the speed run of the learned policy starts from the state its accuracy run ended with, without warm-up
    rl_speed = read_summary(out / "speed_64" / "rl50")["config"]
    assert rl_speed["policy_checkpoint"] == str(out / "rl50" / "policy.pt") and rl_speed["num_clips_warmup"] == 0
    results = (out / "results.md").read_text()
    assert results in capsys.readouterr().out
    rows = {line.split("|")[1].strip() for line in results.splitlines() if line.startswith("| ")}
    assert {"static", "random", "rl50"} <= rows
    for line in ("static mIoU", "rl50 GMACs per frame", "FPS rl50 / static at 64x128"):
        assert line in results
    assert (out / "pareto.png").stat().st_size > 0

    # Run again: every finished run is kept, nothing is recomputed.
    before = {path: path.stat().st_mtime_ns for path in out.rglob("summary.parquet")}
    assert accuracy_benchmark.main([*TINY, "--speed-clips", "1", "--out", str(out)]) == 0
    assert "finished earlier, kept" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in out.rglob("summary.parquet")} == before


def test_goals_say_what_is_met_and_what_is_missed(tmp_path):
    out = tmp_path / "bench"
    assert accuracy_benchmark.main([*TINY, "--speed-clips", "0", "--out", str(out)]) == 0
    lines = accuracy_benchmark.goal_lines(out, [0.5], speed_res=[],
                                          goals=accuracy_benchmark.Goals(static_miou=-1, miou_over_random=1000))
    assert lines[0].endswith(": met") and lines[-1].endswith(": **missed**")
    assert not (out / "speed_64").exists()


def test_speed_runs_at_another_resolution_keep_the_block_grid(tmp_path):
    args, passthrough = accuracy_benchmark.build_parser().parse_known_args(
        ["--out", str(tmp_path), "--speed-res", "512", "1024", "--executor", "inline"])
    rl = accuracy_benchmark.variants([0.5])[2]
    command = accuracy_benchmark.evaluate_command(args, rl, tmp_path / "speed_1024" / "rl50", 1024, passthrough)
    flags = dict(zip(command[3::2], command[4::2], strict=False))
    assert (flags["--res"], flags["--block-size"], flags["--num-clips-eval"]) == ("1024", "128", "8")
    assert "--fast" in command and command[-2:] == ["--executor", "inline"]
    assert command[command.index("--policy-checkpoint") + 1] == str(tmp_path / "rl50" / "policy.pt")
    with pytest.raises(SystemExit, match="must be whole"):
        accuracy_benchmark.main(["--out", str(tmp_path), "--speed-res", "100"])


def test_a_run_that_fails_stops_the_suite_with_its_name(tmp_path):
    with pytest.raises(SystemExit, match="accuracy run static stopped"):
        accuracy_benchmark.main([*TINY, "--out", str(tmp_path), "--model-backbone", "resnet50"])


def test_targets_naming_the_same_run_twice_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="same run twice"):
        accuracy_benchmark.main(["--targets", "0.5", "0.501", "--out", str(tmp_path)])


def test_help_without_a_suite_lists_the_suites(capsys):
    assert benchmark.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--suite engine|accuracy" in out and "accuracy" in out


def test_policy_networks_run_side_by_side_under_their_own_names(tmp_path):
    names = [variant.name for variant in accuracy_benchmark.variants([0.5], ["compact", "paper"])]
    assert names == ["static", "random", "rl50", "rl50_paper"]
    paper = accuracy_benchmark.variants([0.5], ["paper"])[2]
    assert paper.learns and paper.flags[-2:] == ("--block-policy-net", "paper")
    with pytest.raises(SystemExit, match="same run twice"):
        accuracy_benchmark.main(["--policy-nets", "paper", "paper", "--out", str(tmp_path)])
