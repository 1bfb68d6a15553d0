"""One run per report folder: the manifest, the lock, refusals before any compute, and resumes that leave every
row recorded exactly once (inline job on tiny synthetic and demo clips)."""

import json
import os
import re
import socket
import subprocess
import sys

import pandas as pd
import pytest

from blockcopy_core.data import build_clips
from blockcopy_core.data.synthetic import export_demo
from blockcopy_core.pipeline import job
from blockcopy_core.reporting import read_summary, read_table
from blockcopy_core.reporting.lock import RunLock
from jobs import evaluate

TINY = ["--executor", "inline", "--res", "64", "--clip-length", "2", "--num-clips-eval", "2", "--workers", "0",
        "--seed", "5"]


def forbid_compute(monkeypatch):
    """Fail the test if a job gets as far as starting its executor (refusals come before any compute)."""
    monkeypatch.setattr(job, "make_executor", lambda *args: pytest.fail("the executor was started"))


def refuse(capsys, argv: list[str], match: str) -> str:
    """Run the job expecting a refusal: exit status 2 and one ``error:`` line matching ``match``; the message."""
    assert evaluate.main(argv) == 2
    out = capsys.readouterr().out
    found = re.search(r"^ERROR:blockcopy:error: (.*)$", out, re.MULTILINE)
    assert found and re.search(match, found.group(1)), out
    assert "Traceback" not in out
    return found.group(1)


def files(folder):
    """Every file under ``folder`` with its size and modification time."""
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def read_plainly(folder):
    """The tables as pandas reads them: every file in the folder."""
    return pd.read_parquet(folder / "clips"), pd.read_parquet(folder / "frames")


def test_a_used_folder_is_refused_without_resume(tmp_path, capsys, monkeypatch):
    assert evaluate.main([*TINY, "--report-dir", str(tmp_path / "run")]) == 0
    before = files(tmp_path / "run")
    forbid_compute(monkeypatch)
    refuse(capsys, [*TINY, "--report-dir", str(tmp_path / "run")],
           "already holds a run: continue it with --resume, or pass another")
    assert files(tmp_path / "run") == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refuse(capsys, [*TINY, "--report-dir", str(tmp_path / "other")], r"is not empty \(notes.txt\) and holds no run")


def test_a_run_that_recorded_nothing_gives_way_to_a_new_one(tmp_path, monkeypatch):
    def no_cluster(*args):
        raise ConnectionError("no Ray cluster")

    monkeypatch.setattr(job, "make_executor", no_cluster)
    assert evaluate.main([*TINY, "--report-dir", str(tmp_path)]) == 3  # it stopped before its first batch
    first = json.loads((tmp_path / "manifest.json").read_text())["run_id"]
    monkeypatch.undo()
    assert evaluate.main([*TINY, "--seed", "6", "--report-dir", str(tmp_path)]) == 0
    assert read_summary(tmp_path)["run_id"] != first and read_summary(tmp_path)["config"]["seed"] == 6


def test_resume_with_other_settings_lists_each_difference(tmp_path, capsys, monkeypatch):
    assert evaluate.main([*TINY, "--block-policy", "random", "--block-size", "32", "--report-dir",
                          str(tmp_path)]) == 0
    forbid_compute(monkeypatch)
    message = refuse(capsys, [*TINY, "--block-policy", "random", "--block-size", "64", "--half", "--resume",
                              "--report-dir", str(tmp_path)], "cannot resume")
    assert "\n" not in message and message.startswith(f"cannot resume {tmp_path} with other settings")
    assert "block_size: 32 -> 64" in message and "half: False -> True" in message
    # where it runs is no setting of the run: a resume may change it
    monkeypatch.undo()
    assert evaluate.main([*TINY, "--block-policy", "random", "--block-size", "32", "--resume", "--timings",
                          "--num-actors", "3", "--report-dir", str(tmp_path)]) == 0


def test_resume_refuses_other_demo_data(tmp_path, capsys, monkeypatch):
    clips = build_clips("synthetic", clip_length=2, num_clips=2, seed=1, height=64, width=128)
    for name in ("demo", "other"):
        export_demo(tmp_path / name, clips)
    common = ["--executor", "inline", "--random-weights", "--clip-length", "2", "--workers", "0",
              "--report-dir", str(tmp_path / "run")]
    assert evaluate.main([*common, "--demo-dir", str(tmp_path / "demo")]) == 0
    forbid_compute(monkeypatch)
    refuse(capsys, [*common, "--demo-dir", str(tmp_path / "other"), "--resume"],
           f"demo_dir: {tmp_path / 'demo'} -> {tmp_path / 'other'}")
    # a frame of a clip already recorded was rewritten
    frame = sorted((tmp_path / "demo").rglob("*.png"))[0]
    os.utime(frame, ns=(0, 0))
    refuse(capsys, [*common, "--demo-dir", str(tmp_path / "demo"), "--resume"],
           "files of recorded clips demo_00000: changed since they ran")


def test_resume_of_a_folder_that_is_no_run_is_refused(tmp_path, capsys, monkeypatch):
    forbid_compute(monkeypatch)
    refuse(capsys, [*TINY, "--resume", "--report-dir", str(tmp_path / "missing")],
           "has no manifest.json, so it is not a run folder")
    assert not (tmp_path / "missing").exists()


def test_a_second_job_is_refused_while_the_lock_is_held(tmp_path, capsys, monkeypatch):
    forbid_compute(monkeypatch)
    held = RunLock(tmp_path)
    held.acquire()
    try:
        refuse(capsys, [*TINY, "--report-dir", str(tmp_path)],
               f"run {tmp_path} is being written by pid {os.getpid()} on host {socket.gethostname()} since ")
    finally:
        held.release()
    assert not list(tmp_path.iterdir())  # the refused job left nothing, the released lock nothing either


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    (tmp_path / "run.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                                   "since": "2024-01-01T00:00:00+00:00"}))
    assert evaluate.main([*TINY, "--report-dir", str(tmp_path)]) == 0
    assert f"taking over the lock left by pid {pid}" in capsys.readouterr().out
    assert not (tmp_path / "run.lock").exists()


def test_a_lock_of_another_host_is_not_taken(tmp_path, capsys, monkeypatch):
    forbid_compute(monkeypatch)
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "then"}))
    refuse(capsys, [*TINY, "--report-dir", str(tmp_path)],
           r"being written by pid 1 on host elsewhere since then; if no job writes it any more, delete .*run.lock")


def test_an_unwritable_folder_is_refused_before_compute(tmp_path, capsys, monkeypatch):
    forbid_compute(monkeypatch)
    (tmp_path / "file").write_text("")
    refuse(capsys, [*TINY, "--report-dir", str(tmp_path / "file" / "run")],
           "cannot write the report to .*file/run .*: pass a writable")


def test_crash_debris_is_cleared_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert evaluate.main([*TINY, "--num-clips-eval", "3", "--report-dir", str(run)]) == 0
    undisturbed = read_table(run, "frames").sort_by([("clip_id", "ascending"), ("frame_index", "ascending")])
    # The crash: no summary, a batch whose clips part never came, one truncated part, unfinished writes.
    (run / "summary.parquet").unlink()
    uncommitted, truncated, whole = sorted((run / "clips").glob("*.parquet"))
    uncommitted.unlink()
    truncated.write_bytes(truncated.read_bytes()[:100])
    for table in ("clips", "frames"):
        (run / table / f".{whole.name}.1234abcd.tmp").write_bytes(b"PAR1 half")
        (run / table / "part-x.parquet.tmp").write_bytes(b"PAR1 half")
    assert read_table(run, "clips").num_rows == 1  # readers see the one whole batch
    assert "skipping the damaged batch" in capsys.readouterr().out

    assert evaluate.main([*TINY, "--num-clips-eval", "3", "--report-dir", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "4 unfinished writes and 1 frames parts of uncommitted batches" in out
    assert f"moved the damaged batch {truncated.name} to quarantine/" in out
    assert "1 of 3 clips already recorded" in out
    clips, frames = read_plainly(run)
    assert sorted(clips.clip_id) == sorted(set(clips.clip_id)) and len(clips) == 3
    assert len(frames) == len(frames[["clip_id", "frame_index"]].drop_duplicates()) == 6
    assert sorted(p.name for p in (run / "quarantine").iterdir()) == [f"clips-{truncated.name}",
                                                                      f"frames-{truncated.name}"]
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    resumed = read_table(run, "frames").sort_by([("clip_id", "ascending"), ("frame_index", "ascending")])
    assert resumed.select(["clip_id", "frame_index", "gmacs"]) == undisturbed.select(["clip_id", "frame_index",
                                                                                      "gmacs"])
    assert read_summary(run)["num_frames"] == 6


@pytest.mark.parametrize("batch_size", ["1", "2"])
def test_a_failed_clip_runs_again_on_resume(tmp_path, capsys, batch_size):
    export_demo(tmp_path / "demo", build_clips("synthetic", clip_length=4, num_clips=1, seed=1, height=64, width=128))
    broken = sorted((tmp_path / "demo").rglob("*.png"))[1]
    image = broken.read_bytes()
    broken.write_bytes(b"not a png")
    command = ["--executor", "inline", "--demo-dir", str(tmp_path / "demo"), "--random-weights", "--clip-length",
               "2", "--batch-size", batch_size, "--workers", "0", "--report-dir", str(tmp_path / "run")]
    assert evaluate.main(command) == 1
    assert read_summary(tmp_path / "run")["num_clips_failed"] == 1
    broken.write_bytes(image)  # fixed: a failed clip's files may change, it has not run yet

    assert evaluate.main([*command, "--resume"]) == 0
    clips, frames = read_plainly(tmp_path / "run")
    assert sorted(clips.clip_id) == ["demo_00000", "demo_00001"] and set(clips.status) == {"ok"}
    assert len(frames) == 4
    summary = read_summary(tmp_path / "run")
    assert (summary["num_clips"], summary["num_clips_failed"], summary["num_frames"]) == (2, 0, 4)


def test_resuming_a_complete_run_changes_nothing(tmp_path, monkeypatch):
    assert evaluate.main([*TINY, "--report-dir", str(tmp_path)]) == 0
    before = files(tmp_path)
    forbid_compute(monkeypatch)
    assert evaluate.main([*TINY, "--report-dir", str(tmp_path), "--resume"]) == 0
    assert files(tmp_path) == before  # no part added, the summary (its fps too) and the manifest untouched
    assert read_summary(tmp_path)["fps"] > 0


def test_an_interrupted_run_with_every_clip_done_gets_its_summary_without_compute(tmp_path, monkeypatch):
    assert evaluate.main([*TINY, "--report-dir", str(tmp_path)]) == 0
    whole = read_summary(tmp_path)
    (tmp_path / "summary.parquet").unlink()  # the crash came after the last batch
    parts = sorted(p.name for p in (tmp_path / "clips").iterdir())
    forbid_compute(monkeypatch)
    assert evaluate.main([*TINY, "--report-dir", str(tmp_path), "--resume"]) == 0
    summary = read_summary(tmp_path)
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == parts
    assert (summary["num_clips"], summary["mean_iou"]) == (whole["num_clips"], whole["mean_iou"])
    assert summary["run_id"] == whole["run_id"]
    assert pd.isna(summary["fps"]) and pd.isna(summary["wall_s"])  # no speed was measured in that session
