"""The fault table of docs/reliability.md: how each fault ends the job (exit status, message) and what it leaves.

Rows tested elsewhere: a killed actor (test_ray_job.py), a concurrent job, a stale run lock and a damaged part
(test_run_folder.py), a stale kernel-build lock (test_kernels.py), each bad input (test_bad_inputs.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blockcopy_core.pipeline import job
from blockcopy_core.reporting import read_summary, read_table
from blockcopy_core.reporting.writer import RunWriter
from jobs import evaluate

REPO = Path(__file__).resolve().parents[1]
TINY = ["--res", "64", "--clip-length", "2", "--num-clips-eval", "4", "--block-policy", "random",
        "--block-size", "32", "--seed", "3"]
INLINE = [*TINY, "--executor", "inline"]
# Columns that say where and how fast a clip ran, not what it computed.
RUN_DEPENDENT = {"run_id", "actor", "node", "compute_s", "wall_s", "latency_ms", "peak_rss_mb", "decode_s"}


def rows(report_dir: Path, table: str) -> list[dict]:
    """A table's rows in clip and frame order, without run-dependent columns, NaN as None (so rows compare)."""
    found = [{key: None if value != value else value for key, value in row.items() if key not in RUN_DEPENDENT}
             for row in read_table(report_dir, table).to_pylist()]
    return sorted(found, key=lambda row: (row["clip_id"], row.get("frame_index", 0)))


def start_job(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "jobs.evaluate", *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_first_batch(process: subprocess.Popen, report_dir: Path, log: Path, timeout_s: float = 120) -> None:
    """Until the job has committed a batch (a clips part) and is still running."""
    deadline = time.monotonic() + timeout_s
    while not list((report_dir / "clips").glob("*.parquet")):
        assert process.poll() is None, f"the job ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no batch recorded in {timeout_s} s:\n{log.read_text()}"
        time.sleep(0.1)


def descendants(pid: int) -> set[int]:
    """The pids of a process's children, grandchildren, ... (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_complete_run_exits_0(tmp_path):
    assert evaluate.main([*INLINE, "--report-dir", str(tmp_path / "run")]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--demo-dir", "{tmp}/missing", "--random-weights"], "demo folder {tmp}/missing does not exist"),
    (["--model-checkpoint", "{tmp}/notes.txt"], "cannot read checkpoint {tmp}/notes.txt: not a PyTorch file"),
    (["--report-dir", "{tmp}/used"], "{tmp}/used is not empty (notes.txt) and holds no run"),
    (["--resume", "--report-dir", "{tmp}/used"], "cannot resume {tmp}/used: it has no manifest.json"),
    (["--report-dir", "{tmp}/notes.txt"], "the report folder {tmp}/notes.txt is a file: pass a new or empty"),
])
def test_bad_input_is_refused_with_status_2_in_one_line(tmp_path, capsys, args, message):
    (tmp_path / "notes.txt").write_text("not weights\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine\n")
    args = [arg.format(tmp=tmp_path) for arg in args]
    report_dir = [] if "--report-dir" in args else ["--report-dir", str(tmp_path / "run")]
    assert evaluate.main([*INLINE, *args, *report_dir]) == 2
    out = capsys.readouterr().out
    assert f"ERROR:blockcopy:error: {message.format(tmp=tmp_path)}" in out
    assert "Traceback" not in out and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["--num-actors", "0"], ["--num-clips-eval", "0"], ["--block-size", "0"]])
def test_bad_usage_is_refused_with_status_2(capsys, args):
    with pytest.raises(SystemExit) as info:
        evaluate.main([*INLINE, *args])
    assert info.value.code == 2 and f"error: {args[0]} " in capsys.readouterr().err


def test_interrupted_run_exits_3_and_its_resume_gives_the_undisturbed_rows(tmp_path, capsys, monkeypatch):
    assert evaluate.main([*INLINE, "--report-dir", str(tmp_path / "undisturbed")]) == 0
    report = tmp_path / "run"
    append = RunWriter.append
    batches = []

    def interrupted_after_one_batch(self, results):  # Ctrl-C arrives while the second batch is recorded
        batches.append(results)
        if len(batches) == 2:
            raise KeyboardInterrupt
        append(self, results)

    monkeypatch.setattr(RunWriter, "append", interrupted_after_one_batch)
    assert evaluate.main([*INLINE, "--report-dir", str(report)]) == 3
    out = capsys.readouterr().out
    resume = re.search(r"interrupted \(SIGINT\): the clips finished so far are recorded in .*; continue with:\n"
                       r"  python -m jobs\.evaluate (.*)\n", out)
    assert resume, out
    assert read_table(report, "clips").num_rows == 1 and not (report / "summary.parquet").exists()
    monkeypatch.setattr(RunWriter, "append", append)
    assert evaluate.main(resume.group(1).split()) == 0
    for table in ("clips", "frames"):
        assert rows(report, table) == rows(tmp_path / "undisturbed", table)
    assert read_summary(report)["mean_iou"] == read_summary(tmp_path / "undisturbed")["mean_iou"]


def test_a_report_that_cannot_be_written_aborts_with_status_3(tmp_path, capsys, monkeypatch):
    def disk_full(self, results):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunWriter, "append", disk_full)
    assert evaluate.main([*INLINE, "--report-dir", str(tmp_path / "run")]) == 3
    assert "error: cannot write the report in" in capsys.readouterr().out


def test_a_crash_aborts_with_status_3_and_its_traceback(tmp_path, capsys, monkeypatch):
    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(job, "aggregate_clips", broken)
    assert evaluate.main([*INLINE, "--report-dir", str(tmp_path / "run")]) == 3
    out = capsys.readouterr().out
    assert "the job crashed" in out and "RuntimeError: a bug" in out and "Traceback" in out


def test_a_killed_driver_resumed_gives_the_undisturbed_rows(tmp_path):
    longer = [*INLINE, "--num-clips-eval", "12"]  # so the kill surely comes before the end
    assert evaluate.main([*longer, "--report-dir", str(tmp_path / "undisturbed")]) == 0
    report, log = tmp_path / "run", tmp_path / "job.log"
    process = start_job([*longer, "--report-dir", str(report)], log)
    wait_for_first_batch(process, report, log)
    process.kill()  # kill -9: no handler runs, the lock and any half-written batch stay behind
    process.wait()
    assert read_table(report, "clips").num_rows < 12
    assert evaluate.main([*longer, "--report-dir", str(report), "--resume"]) == 0
    for table in ("clips", "frames"):
        assert rows(report, table) == rows(tmp_path / "undisturbed", table)


@pytest.mark.parametrize(("sent", "executor"), [(signal.SIGTERM, "ray"), (signal.SIGINT, "inline")])
def test_a_signal_stops_the_job_with_status_3_and_no_process_left(tmp_path, sent, executor):
    report, log = tmp_path / "run", tmp_path / "job.log"
    longer = ["--num-clips-eval", "40", "--executor", executor, "--num-actors", "1", "--cpus-per-actor", "1"]
    process = start_job([*TINY, *longer, "--report-dir", str(report)], log)
    wait_for_first_batch(process, report, log)
    started = descendants(process.pid)
    os.kill(process.pid, sent)
    assert process.wait(timeout=60) == 3, log.read_text()
    out = log.read_text()
    assert f"interrupted ({sent.name})" in out and "--resume" in out
    assert "Traceback" not in out and "core dumped" not in out
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in started if alive(pid)], "processes the job started outlived it"
    assert 1 <= read_table(report, "clips").num_rows < 40


@pytest.mark.slow
def test_ray_dying_under_the_job_is_said_with_status_3(tmp_path):
    report, log = tmp_path / "run", tmp_path / "job.log"
    process = start_job([*TINY, "--num-clips-eval", "40", "--num-actors", "1", "--cpus-per-actor", "1",
                         "--report-dir", str(report)], log)
    wait_for_first_batch(process, report, log)
    (gcs,) = [pid for pid in descendants(process.pid) if b"gcs_server" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(gcs, signal.SIGKILL)
    assert process.wait(timeout=60) == 3, log.read_text()
    out = log.read_text()
    assert "Ray stopped under the job (its head at 127.0.0.1:" in out and "--resume" in out
