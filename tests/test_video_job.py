"""Video files end to end through Ray: segments on two actors, stitched outputs, broken files recorded failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import pandas as pd
import pytest

from blockcopy_core.data.synthetic.video import write_synthetic_video
from blockcopy_core.reporting.tables import build_sections

pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder with a 50-frame video, a 12-frame one cut off half-way, and a file that is no video."""
    folder = tmp_path_factory.mktemp("videos")
    write_synthetic_video(folder / "long.mp4", 50, 64, 128, fps=10, seed=1)
    whole = write_synthetic_video(folder / "cut.mp4", 12, 64, 128, fps=10, seed=2).read_bytes()
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.mp4").write_bytes(b"not a video at all\n" * 10)
    return folder


@pytest.fixture(scope="module")
def run(videos, tmp_path_factory):
    """The job over the folder on 2 actors: its exit status and its report and output folders."""
    out = tmp_path_factory.mktemp("run")
    command = [sys.executable, "-m", "jobs.evaluate", "--video", str(videos), "--random-weights",
               "--block-policy", "random", "--block-size", "32", "--segment-length", "20", "--num-actors", "2",
               "--cpus-per-actor", "1", "--output-dir", str(out / "out"), "--report-dir", str(out / "report")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    return done, out / "report", out / "out"


def test_a_broken_video_fails_alone_with_status_1(run):
    done, report, _ = run
    assert done.returncode == 1, done.stdout + done.stderr
    clips = pd.read_parquet(report / "clips").set_index("clip_id")
    assert clips.loc["notes.mp4", "status"] == "failed" and "notes.mp4: not a readable video" in clips.loc[
        "notes.mp4", "error"]
    long = clips[clips.video == "long"]
    assert list(long.sort_values("segment").num_frames) == [20, 20, 10] and set(long.status) == {"ok"}


def test_a_truncated_video_keeps_the_frames_it_decoded(run):
    _, report, _ = run
    clips = pd.read_parquet(report / "clips")
    (cut,) = clips[clips.video == "cut"].itertuples()
    assert cut.status == "failed" and "cut.mp4" in cut.error and 0 < cut.num_frames < 12
    frames = pd.read_parquet(report / "frames")
    assert list(frames[frames.video == "cut"].sort_values("frame_index").video_frame) == list(range(cut.num_frames))


def test_every_frame_once_in_order_and_each_segment_starts_fully_executed(run):
    _, report, _ = run
    frames = pd.read_parquet(report / "frames")
    long = frames[frames.video == "long"].sort_values("video_frame")
    assert list(long.video_frame) == list(range(50))
    clips = pd.read_parquet(report / "clips")
    assert len(set(clips[clips.video == "long"].actor)) == 2  # the segments were spread over both actors
    first = long.groupby("clip_id").video_frame.idxmin()
    assert (long.loc[first, "exec_fraction"] == 1.0).all()
    assert (clips[clips.video == "long"].source_fps == 10).all()
    assert (clips[clips.status == "ok"].decode_s > 0).all() and (clips[clips.status == "ok"].peak_rss_mb > 0).all()


def test_overlay_videos_have_every_frame(run, videos):
    _, _, out = run
    with av.open(str(out / "videos" / "long.mp4")) as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == 50
        assert (stream.codec_context.width, stream.codec_context.height) == (128, 64)


def test_the_report_gives_one_row_per_video(run):
    _, report, _ = run
    sections, _, _ = build_sections([report], videos=True)
    rows = {row["video"]: row for row in sections[-1].rows}
    assert set(rows) == {"long", "cut", "notes.mp4"}
    assert (rows["long"]["segments_ok"], rows["long"]["segments_failed"], rows["long"]["frames"]) == (3, 0, 50)
    assert rows["cut"]["segments_failed"] == 1 and 0 < rows["cut"]["frames"] < 12
    assert rows["notes.mp4"]["frames"] == 0 and rows["long"]["decode_ms"] > 0
