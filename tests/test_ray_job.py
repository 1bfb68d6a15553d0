"""The Ray executor: local mode, several nodes, fake GPUs, a killed actor, resume, bad data."""

import io
import os
import shutil
import signal
import threading

import pyarrow.parquet as pq
import pytest
import torch

ray = pytest.importorskip("ray")

from ray_helpers import LOOPBACK, short_temp_dir  # noqa: E402

from blockcopy_core import BlockCopySettings  # noqa: E402
from blockcopy_core.data import build_clips  # noqa: E402
from blockcopy_core.data.synthetic import export_demo  # noqa: E402
from blockcopy_core.models import build_swiftnet  # noqa: E402
from blockcopy_core.pipeline import InlineExecutor, RunnerConfig  # noqa: E402
from blockcopy_core.pipeline.ray_executor import RayExecutor  # noqa: E402
from blockcopy_core.reporting import read_summary, read_table  # noqa: E402
from jobs import evaluate  # noqa: E402

TINY = ["--res", "64", "--clip-length", "3", "--num-clips-eval", "4", "--workers", "0", "--seed", "2"]


@pytest.fixture(scope="module")
def local_ray():
    # a fresh instance of our own ("local": never one already running here), in this module's temp dir
    temp_dir = short_temp_dir("bcjob")
    ray.init(address="local", _node_ip_address=LOOPBACK, num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=temp_dir)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def clip_rows(report_dir):
    return read_table(report_dir, "clips").to_pylist()


def test_two_actors_match_the_inline_executor(tmp_path, local_ray):
    assert evaluate.main([*TINY, "--num-actors", "2", "--cpus-per-actor", "1", "--report-dir",
                          str(tmp_path / "ray")]) == 0
    assert evaluate.main([*TINY, "--executor", "inline", "--report-dir", str(tmp_path / "inline")]) == 0
    on_ray, inline = read_summary(tmp_path / "ray"), read_summary(tmp_path / "inline")
    assert on_ray["num_actors"] == 2
    assert on_ray["mean_iou"] == pytest.approx(inline["mean_iou"], abs=1e-6)
    rows = clip_rows(tmp_path / "ray")
    assert sorted(r["clip_id"] for r in rows) == sorted(r["clip_id"] for r in clip_rows(tmp_path / "inline"))
    assert len({r["actor"] for r in rows}) == 2  # dynamic dispatch used both actors
    frames = read_table(tmp_path / "ray", "frames")
    assert frames.num_rows == on_ray["num_frames"] == 12


def test_resume_completes_an_interrupted_run(tmp_path, local_ray):
    report = tmp_path / "run"
    common = ["--num-actors", "1", "--cpus-per-actor", "1", "--report-dir", str(report)]
    assert evaluate.main([*TINY, *common]) == 0
    # as if it had stopped after two of its four batches: their clips parts are gone (frames parts left behind)
    (report / "summary.parquet").unlink()
    for part in sorted((report / "clips").glob("*.parquet"))[:2]:
        part.unlink()
    first = {r["clip_id"] for r in clip_rows(report)}
    assert evaluate.main([*TINY, *common, "--resume"]) == 0
    ids = [r["clip_id"] for r in clip_rows(report)]
    evaluate.main([*TINY, "--executor", "inline", "--report-dir", str(tmp_path / "clean")])
    assert sorted(ids) == sorted(r["clip_id"] for r in clip_rows(tmp_path / "clean"))
    assert len(ids) == len(set(ids)) == 4 and len(first) == 2 and first < set(ids)
    assert {r["run_id"] for r in clip_rows(report)} == {read_summary(report)["run_id"]}
    assert len(pq.read_table(report / "frames")) == 12  # any Parquet reader: every frame once


def test_corrupt_demo_frame_fails_only_its_clip(tmp_path, local_ray):
    export_demo(tmp_path / "demo", build_clips("synthetic", clip_length=6, num_clips=1, seed=1, height=64, width=128))
    broken = sorted((tmp_path / "demo").rglob("*.png"))[4]
    broken.write_bytes(b"\x89PNG broken")
    code = evaluate.main(["--demo-dir", str(tmp_path / "demo"), "--random-weights", "--clip-length", "2",
                          "--num-actors", "2", "--cpus-per-actor", "1", "--report-dir", str(tmp_path / "run")])
    assert code == 1
    rows = clip_rows(tmp_path / "run")
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(rows) == 3 and len(failed) == 1
    assert broken.name in failed[0]["error"]
    assert read_summary(tmp_path / "run")["num_clips_failed"] == 1


def test_killed_actor_is_restarted_and_its_clip_rerun(local_ray):
    clips = build_clips("synthetic", clip_length=4, num_clips=6, seed=3, height=64, width=128)
    executor = RayExecutor(RunnerConfig(seed=3), build_swiftnet("resnet18").state_dict(), num_actors=1,
                           cpus_per_actor=1, max_restarts=2)
    pid = executor.infos[0]["pid"]
    collected = []

    def on_results(results):
        collected.extend(results)
        if len(collected) == 1:  # the actor has started the next clip: kill it in the middle of it
            threading.Timer(0.2, os.kill, (pid, signal.SIGKILL)).start()

    try:
        executor.run_phase([[clip] for clip in clips], "eval", on_results)
        new_pid = ray.get(executor.actors[0].info.remote())["pid"]
    finally:
        executor.close()
    assert new_pid != pid
    assert sorted(r.clip_id for r in collected) == sorted(c.clip_id for c in clips)
    assert all(r.status == "ok" and r.num_frames == 4 for r in collected)


def test_killed_actor_gives_the_undisturbed_rows(local_ray):
    """Random policy: a clip re-run on a restarted actor draws the same grids, so every row is as without the kill."""
    clips = build_clips("synthetic", clip_length=4, num_clips=4, seed=3, height=64, width=128)
    config = RunnerConfig(blockcopy=BlockCopySettings(block_policy="random", block_size=32), seed=3)
    weights = build_swiftnet("resnet18").state_dict()
    undisturbed = []
    InlineExecutor(config, weights).run_phase([[clip] for clip in clips], "eval", undisturbed.extend)
    disturbed = run_with_a_kill(RayExecutor(config, weights, num_actors=1, cpus_per_actor=1, max_restarts=2), clips)

    def rows(results):
        return sorted((r.clip_id, r.confusion, [(f.exec_fraction, f.gmacs) for f in r.frames]) for r in results)

    assert rows(disturbed) == rows(undisturbed)


def test_restarted_actor_resumes_the_learned_policy_it_reported(local_ray):
    clips = build_clips("synthetic", clip_length=4, num_clips=5, seed=3, height=64, width=128)
    config = RunnerConfig(blockcopy=BlockCopySettings(block_policy="rl_semseg", block_size=32), seed=3)
    executor = RayExecutor(config, build_swiftnet("resnet18").state_dict(), num_actors=1, cpus_per_actor=1,
                           max_restarts=2)
    results = run_with_a_kill(executor, clips, close=False)
    try:
        state = ray.get(executor.actors[0].policy_state.remote())
    finally:
        executor.close()
    assert all(r.status == "ok" for r in results)
    # every clip's frames after its first were learned from exactly once: the restarted actor went on from the
    # state reported after the last finished clip (from scratch it would have seen fewer)
    assert torch.load(io.BytesIO(state), weights_only=True)["frames_seen"] == len(clips) * 3


def run_with_a_kill(executor: RayExecutor, clips: list, close: bool = True) -> list:
    """Run ``clips`` one per batch, killing the actor's process in the middle of the second clip."""
    pid = executor.infos[0]["pid"]
    collected = []

    def on_results(results):
        collected.extend(results)
        if len(collected) == 1:
            threading.Timer(0.2, os.kill, (pid, signal.SIGKILL)).start()

    try:
        executor.run_phase([[clip] for clip in clips], "eval", on_results)
        assert ray.get(executor.actors[0].info.remote())["pid"] != pid  # it was killed and restarted
    finally:
        if close:
            executor.close()
    return collected
