"""End-to-end runs of the inline evaluation job on tiny synthetic clips."""

import hashlib
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from blockcopy_core.data import Clip, Frame, build_clips, iter_frames
from blockcopy_core.data.synthetic import export_demo
from blockcopy_core.data.transforms import normalize, pad_to_multiple, resize_image, target_size
from blockcopy_core.metrics import ConfusionMatrix
from blockcopy_core.models import SYNTHETIC_CHECKPOINT, build_swiftnet, fold_batchnorm, load_checkpoint
from blockcopy_core.pipeline import runner as runner_module
from blockcopy_core.pipeline.runner import ClipRunner
from blockcopy_core.reporting import read_summary, read_table, writer
from jobs import evaluate

TINY = ["--executor", "inline", "--res", "64", "--clip-length", "3", "--num-clips-eval", "2", "--workers", "1",
        "--seed", "5"]
SUMMARY_COLUMNS = {"run_id", "policy", "backbone", "block_size", "block_target", "height", "width", "num_clips",
                   "num_clips_failed", "num_frames", "mean_iou", "gmacs_per_frame", "fps", "exec_fraction", "config"}


def test_default_synthetic_run_prints_summary_and_writes_parquet(tmp_path, capsys):
    code = evaluate.main([*TINY, "--report-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    assert "RANDOM WEIGHTS" not in out and f"loaded weights from {SYNTHETIC_CHECKPOINT}" in out
    for line in ("Mean IoU ", "Computational cost (avg per img): ", "Average FPS: "):
        assert line in out
    table = pq.read_table(tmp_path / "run" / "summary.parquet")
    assert SUMMARY_COLUMNS <= set(table.column_names)
    row = read_summary(tmp_path / "run")
    assert (row["num_clips"], row["num_frames"], row["num_clips_failed"]) == (2, 6, 0)
    assert (row["height"], row["width"]) == (64, 128)
    assert row["policy"] == "static" and row["exec_fraction"] == 1.0
    assert row["config"]["seed"] == 5 and row["checkpoint"] == "pretrained/swiftnet_rn18_synthetic.pth"
    assert row["checkpoint_sha256"] == hashlib.sha256(SYNTHETIC_CHECKPOINT.read_bytes()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|source:[0-9a-f]{12}", row["git_commit"])
    # static SwiftNet-RN18 at 64x128 is 1/256 of its 1024x2048 cost
    assert row["gmacs_per_frame"] == pytest.approx(103.57 / 256, rel=0.01)
    assert 0.0 <= row["mean_iou"] <= 100.0


def test_miou_equals_a_direct_computation(tmp_path):
    evaluate.main([*TINY, "--report-dir", str(tmp_path)])
    model = fold_batchnorm(load_checkpoint(build_swiftnet("resnet18"), SYNTHETIC_CHECKPOINT)).eval()
    confusion = ConfusionMatrix()
    from blockcopy_core.data.transforms import normalize

    for clip in build_clips("synthetic", clip_length=3, num_clips=2, seed=5, height=64, width=128):
        for frame in iter_frames(clip):
            with torch.no_grad():
                logits = model(normalize(frame.image)[None])
            confusion.update(logits.argmax(1)[0].numpy().astype(np.uint8), frame.label)
    assert read_summary(tmp_path)["mean_iou"] == pytest.approx(confusion.mean_iou(), abs=0.01)


def test_corrupt_demo_frame_fails_its_clip_only(tmp_path, capsys):
    clips = build_clips("synthetic", clip_length=4, num_clips=1, seed=1, height=64, width=128)
    export_demo(tmp_path / "demo", clips)
    frames = sorted((tmp_path / "demo").rglob("*.png"))
    frames[1].write_bytes(b"not a png")
    code = evaluate.main(["--executor", "inline", "--demo-dir", str(tmp_path / "demo"), "--random-weights",
                          "--clip-length", "2", "--report-dir", str(tmp_path / "run"), "--workers", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert frames[1].name in out
    row = read_summary(tmp_path / "run")
    assert (row["num_clips"], row["num_clips_failed"], row["num_frames"]) == (2, 1, 2)


def test_batch_of_clips_gives_the_same_result_as_one_by_one(tmp_path):
    evaluate.main([*TINY, "--report-dir", str(tmp_path / "single")])
    evaluate.main([*TINY, "--batch-size", "2", "--report-dir", str(tmp_path / "batch")])
    single, batch = read_summary(tmp_path / "single"), read_summary(tmp_path / "batch")
    assert batch["mean_iou"] == pytest.approx(single["mean_iou"], abs=1e-6)
    assert batch["num_frames"] == single["num_frames"]



def test_random_weights_are_said_loudly(tmp_path, capsys):
    evaluate.main([*TINY, "--random-weights", "--num-clips-eval", "1", "--report-dir", str(tmp_path)])
    assert "RANDOM WEIGHTS" in capsys.readouterr().out
    assert read_summary(tmp_path)["checkpoint"] == ""


def test_demo_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        evaluate.main(["--demo-dir", str(tmp_path)])


def test_synthetic_backbone_without_a_shipped_checkpoint_is_refused(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--model-backbone", "resnet50"])
    assert "no synthetic checkpoint ships for resnet50" in capsys.readouterr().err


@pytest.mark.parametrize("reader", ["pandas", "polars", "duckdb"])
def test_report_tables_read_as_they_are(tmp_path, reader):
    module = pytest.importorskip(reader)
    evaluate.main([*TINY, "--report-dir", str(tmp_path)])
    if reader == "pandas":
        frames = module.read_parquet(tmp_path / "frames")
        clips = module.read_parquet(tmp_path / "clips")
        assert len(frames) == 6 and set(clips["status"]) == {"ok"}
    elif reader == "polars":
        clips = module.read_parquet(tmp_path / "clips" / "*.parquet")
        assert clips.height == 2 and clips["confusion"].list.len().to_list() == [361, 361]
    else:
        query = f"SELECT count(*), sum(num_frames) FROM '{tmp_path}/clips/*.parquet'"
        assert module.sql(query).fetchall() == [(2, 6)]
        summary = module.sql(f"SELECT mean_iou FROM '{tmp_path}/summary.parquet'").fetchall()[0][0]
        assert summary == pytest.approx(read_summary(tmp_path)["mean_iou"])


def test_audit_of_the_static_model_agrees_fully(tmp_path):
    evaluate.main([*TINY, "--report-dir", str(tmp_path), "--audit-every", "2"])
    frames = read_table(tmp_path, "frames").to_pylist()
    audited = [f for f in frames if not np.isnan(f["dense_agreement"])]
    assert sorted(f["frame_index"] for f in audited) == [0, 0, 2, 2]
    assert all(f["dense_agreement"] == 1.0 and f["dense_kl"] == pytest.approx(0.0, abs=1e-6) for f in audited)
    summary = read_summary(tmp_path)
    assert summary["num_frames_audited"] == 4 and summary["dense_agreement"] == 1.0


def test_audit_tells_what_copying_costs(tmp_path):
    common = [*TINY, "--block-size", "32", "--clip-length", "6", "--audit-every", "1"]
    evaluate.main([*common, "--block-policy", "all", "--report-dir", str(tmp_path / "all")])
    evaluate.main([*common, "--block-policy", "none", "--report-dir", str(tmp_path / "none")])
    full, copied = read_summary(tmp_path / "all"), read_summary(tmp_path / "none")
    assert full["dense_agreement"] == 1.0 and full["dense_kl"] == pytest.approx(0.0, abs=1e-6)
    assert copied["dense_agreement"] < 0.999 and copied["dense_kl"] > 0
    frames = read_table(tmp_path / "none", "frames").to_pylist()
    # the first frame of each clip executes everything, so it agrees fully; copies drift after it
    assert all(f["dense_agreement"] == 1.0 for f in frames if f["frame_index"] == 0)


def test_half_precision_and_single_clip_loop(tmp_path):
    assert evaluate.main([*TINY, "--half", "--report-dir", str(tmp_path / "half")]) == 0
    assert read_summary(tmp_path / "half")["num_frames"] == 6
    assert evaluate.main([*TINY, "--single-clip-loop", "--report-dir", str(tmp_path / "loop")]) == 0
    frames = read_table(tmp_path / "loop", "frames").to_pylist()
    first_clip = {f["name"] for f in frames if f["clip_id"] == frames[0]["clip_id"]}
    assert {f["name"] for f in frames} == first_clip  # every clip ran the first clip's frames


class RecordingNet(torch.nn.Module):
    """A stand-in network that records the shape of every batch it runs."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return x[:, :1]


def test_prime_runs_a_plain_model_on_the_first_frame_and_blockcopy_on_the_first_frames(tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(runner_module, "extension", loaded.append)
    wrapper = torch.nn.Module()  # a BlockCopy wrapper stand-in: calling it (no forward) would raise
    wrapper.base_model = RecordingNet()
    primed = []
    wrapper.prime = lambda batches: primed.append([tuple(batch.shape) for batch in batches])
    runner = ClipRunner(wrapper, torch.device("cpu"), pad_multiple=32)
    clip = build_clips("synthetic", clip_length=5, num_clips=1, seed=0, height=64, width=128)[0]
    runner.prime(clip, batch_size=2)
    assert primed == [[(2, 3, 64, 128)] * runner_module.PRIME_FRAMES] and not runner.stage_seconds
    assert loaded == [torch.device("cpu")]  # the block kernels are ready before the timed run
    short = build_clips("synthetic", clip_length=2, num_clips=1, seed=0, height=64, width=128)[0]
    runner.prime(short)
    assert primed[-1] == [(1, 3, 64, 128)] * 2  # as many frames as the clip has
    loaded.clear()
    plain = ClipRunner(RecordingNet(), torch.device("cpu"), pad_multiple=32)
    plain.prime(clip)
    assert plain.model.shapes == [(1, 3, 64, 128)] and not loaded  # a plain network needs no kernels
    unreadable = Clip("gone", "demo", (str(tmp_path / "missing.png"),), (None,))
    runner.prime(unreadable, batch_size=2)  # primes nothing and raises nothing: the clip fails where it runs
    assert len(primed) == 2


def test_the_job_primes_each_runner_before_the_timed_run(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ClipRunner, "prime", lambda self, clip, batch_size: calls.append((clip.clip_id, batch_size)))
    assert evaluate.main([*TINY, "--batch-size", "2", "--report-dir", str(tmp_path)]) == 0
    first = read_table(tmp_path, "clips").to_pylist()[0]["clip_id"]
    assert calls == [(first, 2)]


def test_outside_a_git_checkout_the_code_is_named_by_its_sources(monkeypatch, tmp_path):
    # as under `ray job submit`, whose uploaded working directory has no .git
    monkeypatch.setattr(writer, "git_commit", lambda repo: "")
    version = writer.code_version()
    assert re.fullmatch(r"source:[0-9a-f]{12}", version) and writer.code_version() == version
    (tmp_path / "blockcopy_core").mkdir()
    (tmp_path / "blockcopy_core" / "a.py").write_text("x = 1\n")
    first = writer.source_digest(tmp_path)
    (tmp_path / "blockcopy_core" / "a.py").write_text("x = 2\n")
    assert writer.source_digest(tmp_path) != first


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("num_frames", [1, 2])
@pytest.mark.parametrize(("size", "res", "dtype"), [((64, 128), None, torch.float32), ((50, 70), None, torch.float32),
                                                    ((128, 256), 64, torch.bfloat16), ((96, 160), 50, torch.bfloat16)])
def test_prepare_builds_the_batch_as_stack_pad_and_layout_do(channels_last, num_frames, size, res, dtype):
    # bit for bit, and in the layout, what stack -> pad_to_multiple -> .to(dtype).contiguous(layout) gives
    rng = np.random.default_rng(0)
    frames = [Frame(str(i), rng.integers(0, 256, (*size, 3), dtype=np.uint8), None) for i in range(num_frames)]
    runner = ClipRunner(lambda x: x, torch.device("cpu"), dtype, res=res, pad_multiple=32, channels_last=channels_last)
    batch, original = runner._prepare(frames)
    target = target_size(*size, res)
    expected, expected_original = pad_to_multiple(
        torch.stack([normalize(resize_image(frame.image, target)) for frame in frames]), 32)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    expected = expected.to(dtype).contiguous(memory_format=layout)
    assert original == expected_original
    assert torch.equal(batch, expected) and batch.dtype == dtype
    assert batch.is_contiguous(memory_format=layout)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_prepare_on_a_gpu_normalises_there_as_the_cpu_does(dtype):
    # the frames travel as uint8 and are normalised on the GPU: the CPU's batch within float rounding
    rng = np.random.default_rng(0)
    frames = [Frame(str(i), rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), None) for i in range(2)]
    batches = [ClipRunner(lambda x: x, torch.device(device), dtype, pad_multiple=32,
                          channels_last=True)._prepare(frames)[0]
               for device in ("cpu", "cuda")]
    assert batches[1].device.type == "cuda" and batches[1].dtype == dtype
    assert batches[1].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(batches[1].cpu(), batches[0], atol=1e-6 if dtype == torch.float32 else 2e-3, rtol=0)
