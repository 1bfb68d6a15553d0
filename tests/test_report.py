"""jobs.report and reporting.tables on fabricated run folders (written with the job's own RunWriter) and one tiny
real run."""

import csv
import glob
import io
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from blockcopy_core.constants import CLASS_NAMES
from blockcopy_core.metrics import ConfusionMatrix
from blockcopy_core.reporting import (
    ClipResult,
    FrameResult,
    RunWriter,
    aggregate_clips,
    read_table,
    summary_row,
    tables,
)
from blockcopy_core.reporting.analysis import pareto_front
from jobs import evaluate, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOCS = Path(__file__).parents[1] / "docs" / "reports.md"


def fake_run(folder, policy="rl_semseg", seed=0, exec_fraction=0.5, gmacs=10.0, fps=20.0, num_clips=3,
             failed=(), finished=True, audit=None):
    """A run folder as jobs.evaluate writes it: 2-frame clips whose predictions are labels with noise."""
    rng = np.random.default_rng(seed)
    config = {"run_id": folder.name, "block_policy": policy, "model_backbone": "resnet18", "block_size": 64,
              "block_target": 0.4, "data": "synthetic", "model_checkpoint": None}
    writer = RunWriter(folder, folder.name, config)
    for c in range(num_clips):
        clip_id = f"clip{c}"
        if clip_id in failed:
            writer.append([ClipResult(clip_id, "eval", status="failed", error=f"OSError: cannot read {clip_id}.png")])
            continue
        confusion = ConfusionMatrix()
        label = rng.integers(0, 19, size=(16, 32))
        prediction = np.where(rng.random(label.shape) < 0.3 + 0.1 * c, label, rng.integers(0, 19, label.shape))
        confusion.update(prediction, label)
        fractions = [1.0, min(1.0, exec_fraction * (0.5 + 0.5 * c))]
        frames = [FrameResult(i, f"{clip_id}/{i}", f, gmacs * f, 50.0, 0.01,
                              dense_agreement=audit if audit is not None and i == 1 else math.nan,
                              dense_kl=0.1 if audit is not None and i == 1 else math.nan)
                  for i, f in enumerate(fractions)]
        writer.append([ClipResult(clip_id, "eval", num_frames=2, wall_s=0.2, compute_s=0.1, actor="a0",
                                  height=16, width=32, confusion=confusion.to_flat(), frames=frames)])
    writer.append([ClipResult("warm0", "warmup", num_frames=1, height=16, width=32,
                              frames=[FrameResult(0, "w", 1.0, gmacs, 1.0)])])
    if finished:
        figures, _ = aggregate_clips(read_table(folder, "clips"))
        audit_figures = {"dense_agreement": audit, "dense_kl": 0.1} if audit is not None else {}
        writer.write_summary(summary_row(config, {**figures, **audit_figures}, fps=fps, num_actors=1))
    return folder


def run_report(capsys, *argv):
    code = report.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys, *argv):
    code, out, err = run_report(capsys, *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def recomputed(folder):
    """mIoU, frame-weighted GMACs and execution fraction straight from the Parquet files."""
    clips = pq.read_table(folder / "clips").to_pandas()
    frames = pq.read_table(folder / "frames").to_pandas()
    ok = clips[(clips.phase == "eval") & (clips.status == "ok")]
    frames = frames[frames.clip_id.isin(ok.clip_id) & (frames.phase == "eval")]
    confusion = np.sum([np.asarray(c).reshape(19, 19) for c in ok.confusion], axis=0)
    matrix = ConfusionMatrix.from_flat(confusion.ravel())
    return matrix, frames.gmacs.mean(), frames.exec_fraction.mean()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "dense": fake_run(root / "dense", policy="static", seed=1, exec_fraction=1.0, gmacs=10.0, fps=10.0),
        "half": fake_run(root / "half", seed=2, exec_fraction=0.5, gmacs=10.0, fps=16.0, audit=0.9),
        "cheap": fake_run(root / "cheap", seed=3, exec_fraction=0.2, gmacs=10.0, fps=25.0, failed=("clip1",)),
        "live": fake_run(root / "live", seed=4, num_clips=2, finished=False, audit=0.8),
    }


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real") / "static"
    evaluate.main(["--executor", "inline", "--res", "64", "--clip-length", "2", "--num-clips-eval", "2",
                   "--workers", "0", "--report-dir", str(folder)])
    return folder


def test_figures_equal_those_recomputed_from_parquet(capsys, runs, real_run):
    folders = [runs["dense"], runs["half"], runs["cheap"], real_run]
    rows = as_json(capsys, *folders)["runs"]
    assert [r["run"] for r in rows] == ["dense", "half", "cheap", "static"]
    for row, folder in zip(rows, folders):
        matrix, gmacs, fraction = recomputed(folder)
        summary = pq.read_table(folder / "summary.parquet").to_pylist()[0]
        assert row["mean_iou"] == pytest.approx(matrix.mean_iou())
        assert row["gmacs_per_frame"] == pytest.approx(gmacs)
        assert row["exec_fraction"] == pytest.approx(fraction)
        assert row["fps"] == pytest.approx(summary["fps"])
        assert row["frames"] == summary["num_frames"]
    dense, half, cheap, real = rows
    assert (dense["policy"], dense["block_size"], dense["block_target"]) == ("static", None, None)
    assert (half["block_size"], half["block_target"], half["resolution"]) == (64, 0.4, "16x32")
    assert (cheap["status"], cheap["clips_ok"], cheap["clips_failed"]) == ("partly failed", 2, 1)
    assert real["status"] == "complete" and real["resolution"] == "64x128" and real["exec_fraction"] == 1.0


def test_baseline_differences(capsys, runs):
    rows = as_json(capsys, runs["half"], runs["cheap"], "--baseline", runs["dense"])["runs"]
    assert [r["run"] for r in rows] == ["dense", "half", "cheap"]  # the baseline comes first
    base = rows[0]
    assert (base["delta_miou"], base["gmacs_ratio"], base["fps_ratio"]) == (0.0, 1.0, 1.0)
    for row in rows[1:]:
        assert row["delta_miou"] == pytest.approx(row["mean_iou"] - base["mean_iou"])
        assert row["gmacs_ratio"] == pytest.approx(row["gmacs_per_frame"] / base["gmacs_per_frame"])
        assert row["fps_ratio"] == pytest.approx(row["fps"] / base["fps"])
    assert rows[2]["fps_ratio"] == pytest.approx(2.5) and rows[1]["gmacs_ratio"] < 1
    listed = as_json(capsys, runs["half"], runs["dense"], runs["half"], "--baseline", runs["dense"])["runs"]
    assert [r["run"] for r in listed] == ["dense", "half"]  # each folder once


def test_per_class_ious_side_by_side(capsys, runs):
    rows = as_json(capsys, runs["dense"], runs["half"], "--per-class")["per_class"]
    assert [r["class"] for r in rows] == [*CLASS_NAMES, "mIoU"]
    for name in ("dense", "half"):
        matrix, _, _ = recomputed(runs[name])
        assert [r[name] for r in rows[:-1]] == pytest.approx(matrix.iou().tolist())
        assert rows[-1][name] == pytest.approx(matrix.mean_iou())
    code, out, _ = run_report(capsys, runs["dense"], runs["half"], "--per-class")
    line = next(line for line in out.splitlines() if line.lstrip().startswith("traffic light"))
    assert line.split()[-2:] == [f"{rows[6]['dense']:.2f}", f"{rows[6]['half']:.2f}"]


def clip_mious(folder):
    clips = pq.read_table(folder / "clips").to_pylist()
    return {c["clip_id"]: ConfusionMatrix.from_flat(c["confusion"]).mean_iou() for c in clips
            if c["phase"] == "eval" and c["status"] == "ok"}


def test_worst_clips_by_iou_and_by_execution_fraction(capsys, runs):
    rows = as_json(capsys, runs["half"], runs["cheap"], "--clips", "iou", "--limit", "2")["clips"]
    for name in ("half", "cheap"):
        mious = clip_mious(runs[name])
        mine = [r for r in rows if r["run"] == name]
        assert [r["clip_id"] for r in mine] == sorted(mious, key=mious.get)[:2]
        assert [r["mean_iou"] for r in mine] == pytest.approx(sorted(mious.values())[:2])
    assert "clip1" not in [r["clip_id"] for r in rows if r["run"] == "cheap"]  # failed: no IoU
    rows = as_json(capsys, runs["half"], "--clips", "exec", "--limit", "1")["clips"]
    assert [(r["clip_id"], r["exec_fraction"]) for r in rows] == [("clip2", pytest.approx((1.0 + 0.75) / 2))]


FORMAT_ARGV = ("--per-class", "--clips", "iou", "--limit", "1")
RUN_HEADERS = ["run", "status", "policy", "target", "backbone", "block", "resolution", "clips ok", "failed", "frames",
               "mIoU", "GMACs/frame", "FPS", "FPS/actor", "exec", "dense agree %", "dense KL"]
FAILED_NOTE = "cheap: clip clip1 failed: OSError: cannot read clip1.png"


@pytest.fixture
def formats(capsys, runs):
    """The same report (dense, half, cheap: per class, the worst clip each) in every format, and its json."""
    argv = [runs["dense"], runs["half"], runs["cheap"], *FORMAT_ARGV]
    outputs = {}
    for fmt in ("table", "markdown", "csv", "json"):
        code, out, err = run_report(capsys, *argv, "--format", fmt)
        assert code == 0, err
        outputs[fmt] = (out, err)
    return outputs, json.loads(outputs["json"][0])


def test_json_format(formats):
    _, document = formats
    assert list(document) == ["runs", "per_class", "clips", "notes"]
    dense, half, cheap = document["runs"]
    assert list(dense) == ["run", "status", "policy", "block_target", "backbone", "block_size", "resolution",
                           "clips_ok", "clips_failed", "frames", "mean_iou", "gmacs_per_frame", "fps",
                           "fps_per_actor", "exec_fraction", "dense_agreement", "dense_kl"]
    assert (dense["block_size"], dense["dense_agreement"], half["dense_agreement"]) == (None, None, 0.9)
    assert (half["fps"], cheap["clips_failed"]) == (16.0, 1)
    assert [r["class"] for r in document["per_class"]] == [*CLASS_NAMES, "mIoU"]
    assert [(r["run"], r["clip_id"]) for r in document["clips"]] == [("dense", "clip0"), ("half", "clip0"),
                                                                       ("cheap", "clip0")]
    assert document["notes"] == [FAILED_NOTE]


def csv_blocks(text):
    blocks = [[]]
    for row in csv.reader(io.StringIO(text)):
        if row:
            blocks[-1].append(row)
        else:
            blocks.append([])
    return blocks


def test_csv_format(formats):
    outputs, document = formats
    out, err = outputs["csv"]
    runs_table, per_class, clips = csv_blocks(out)
    assert runs_table[0] == list(document["runs"][0]) and len(runs_table) == 4
    for row, expected in zip(runs_table[1:], document["runs"]):
        assert row == ["" if v is None else str(v) for v in expected.values()]  # full precision, missing empty
    assert runs_table[1][runs_table[0].index("block_size")] == "" and runs_table[2][5] == "64"
    assert per_class[0] == ["class", "dense", "half", "cheap"] and len(per_class) == 21
    assert per_class[7] == ["traffic light", *(str(document["per_class"][6][n]) for n in ("dense", "half", "cheap"))]
    assert clips[0] == ["run", "clip_id", "frames", "mean_iou", "exec_fraction", "gmacs_per_frame", "actor"]
    assert len(clips) == 4
    assert FAILED_NOTE not in out and err.strip() == FAILED_NOTE  # notes on stderr


def markdown_table(lines, title):
    """The header, alignment row and rows of the pipe table under ``### title``, as lists of cells."""
    start = lines.index(f"### {title}") + 2
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return table[0], table[1], table[2:]


def test_markdown_format(formats):
    outputs, document = formats
    out = outputs["markdown"][0]
    lines = out.splitlines()
    assert out.count("### ") == 3 and lines[-1] == f"- {FAILED_NOTE}"
    header, align, rows = markdown_table(lines, "Runs")
    assert header == RUN_HEADERS and len(rows) == 3
    numeric = {"target", "block", "clips ok", "failed", "frames", "mIoU", "GMACs/frame", "FPS", "FPS/actor", "exec",
               "dense agree %", "dense KL"}
    assert [a.endswith(":") and not a.startswith(":") for a in align] == [h in numeric for h in header]
    dense, half, cheap = (dict(zip(header, row)) for row in rows)
    assert (dense["target"], dense["block"], dense["dense agree %"]) == ("-", "-", "-")
    assert (half["target"], half["block"], half["dense agree %"], half["dense KL"]) == ("0.40", "64", "90.00", "0.1000")
    assert (cheap["status"], cheap["FPS"], cheap["clips ok"]) == ("partly failed", "25.00", "2")
    assert dense["mIoU"] == f"{document['runs'][0]['mean_iou']:.2f}"
    assert half["GMACs/frame"] == f"{document['runs'][1]['gmacs_per_frame']:.3f}"
    header, _, rows = markdown_table(lines, "IoU per class (%)")
    assert header == ["class", "dense", "half", "cheap"] and len(rows) == 20
    assert rows[-1] == ["mIoU", *(f"{document['per_class'][-1][n]:.2f}" for n in ("dense", "half", "cheap"))]
    header, _, rows = markdown_table(lines, "Worst clips per run: lowest mIoU first")
    assert header == ["run", "clip", "frames", "mIoU", "exec", "GMACs/frame", "actor"]
    assert rows[0][:3] == ["dense", "clip0", "2"] and rows[0][3] == f"{document['clips'][0]['mean_iou']:.2f}"


def in_order(line, words):
    """Whether ``words`` occur in ``line`` one after the other."""
    position = 0
    for word in words:
        position = line.find(word, position)
        if position < 0:
            return False
        position += len(word)
    return True


def test_table_format(formats):
    outputs, document = formats
    out = outputs["table"][0]
    lines = out.splitlines()
    assert lines[0] == "Runs" and in_order(lines[1], RUN_HEADERS) and lines[-1] == FAILED_NOTE
    assert set(lines[2]) == {"-", " "}  # the rule under the headers
    dense, half = (line.split() for line in lines[3:5])
    assert dense[:7] == ["dense", "complete", "static", "-", "resnet18", "-", "16x32"]
    assert dense[-2:] == ["-", "-"]  # never audited
    assert half[:7] == ["half", "complete", "rl_semseg", "0.40", "resnet18", "64", "16x32"]
    assert half[10:] == [f"{document['runs'][1]['mean_iou']:.2f}", f"{document['runs'][1]['gmacs_per_frame']:.3f}",
                         "16.00", "20.00", "0.750", "90.00", "0.1000"]
    assert "partly failed" in lines[5]
    assert "IoU per class (%)" in lines and "Worst clips per run: lowest mIoU first" in lines
    clips = lines.index("Worst clips per run: lowest mIoU first")
    assert in_order(lines[clips + 1], ["run", "clip", "frames", "mIoU", "exec", "GMACs/frame", "actor"])
    assert lines[clips + 3].split()[:3] == ["dense", "clip0", "2"]


def test_sections_and_render_without_the_command(runs):
    """The library API the accuracy benchmark uses: baseline first, differences in markdown."""
    sections, notes, loaded = tables.build_sections([runs["cheap"], runs["dense"]], baseline=runs["dense"])
    assert [s.name for s in sections] == ["runs"] and [run.label for run in loaded] == ["dense", "cheap"]
    assert notes == [FAILED_NOTE]
    text = tables.render(sections, notes, "markdown")
    header, _, rows = markdown_table(text.splitlines(), "Runs (differences against dense)")
    assert header[-3:] == ["mIoU diff", "GMACs ratio", "FPS ratio"]
    assert rows[0][-3:] == ["+0.00", "1.000", "1.00"] and rows[1][-1] == "2.50"
    with pytest.raises(ValueError, match="format"):
        tables.render(sections, notes, "html")


def test_empty_table_is_said(tmp_path):
    unscored = fake_run(tmp_path / "unscored", num_clips=2, failed=("clip0", "clip1"))
    sections, notes, _ = tables.build_sections([unscored], clips="iou")
    assert sections[1].rows == []
    assert "Worst clips per run: lowest mIoU first\n(none)" in tables.render(sections, notes, "table")
    assert "### Worst clips per run: lowest mIoU first\n\n(none)" in tables.render(sections, notes, "markdown")
    assert json.loads(tables.render(sections, notes, "json"))["clips"] == []
    assert len(csv_blocks(tables.render(sections, notes, "csv"))[0]) == 2  # the runs block is intact


def test_numbers_shown_rounded():
    difference, plain = tables.Column("d", "+.2f"), tables.Column("p", ".2f", 100.0)
    assert [difference.show(v) for v in (-0.001, 0.004, -1.5, math.nan)] == ["+0.00", "+0.00", "-1.50", "-"]
    assert [plain.show(v) for v in (-0.00001, 0.5, None)] == ["0.00", "50.00", "-"]
    assert [tables.Column("n").show(v) for v in (64, "16x32", 0.25)] == ["64", "16x32", "0.25"]


def test_audit_columns_shown_only_when_recorded(capsys, runs):
    assert "dense_agreement" not in as_json(capsys, runs["dense"])["runs"][0]
    rows = as_json(capsys, runs["dense"], runs["half"], runs["live"])["runs"]
    assert rows[0]["dense_agreement"] is None
    assert (rows[1]["dense_agreement"], rows[1]["dense_kl"]) == (pytest.approx(0.9), pytest.approx(0.1))
    assert rows[2]["dense_agreement"] == pytest.approx(0.8)  # recomputed from the frame rows
    assert "dense agree %" in run_report(capsys, runs["half"])[1]


def test_run_without_summary_is_reported_as_incomplete(capsys, runs):
    document = as_json(capsys, runs["live"])
    row = document["runs"][0]
    matrix, gmacs, fraction = recomputed(runs["live"])
    assert (row["status"], row["fps"], row["policy"], row["clips_ok"]) == ("incomplete", None, "rl_semseg", 2)
    assert row["mean_iou"] == pytest.approx(matrix.mean_iou())
    assert row["gmacs_per_frame"] == pytest.approx(gmacs) and row["exec_fraction"] == pytest.approx(fraction)
    assert "in progress or interrupted" in document["notes"][0]
    code, out, _ = run_report(capsys, runs["live"])
    assert code == 0 and "incomplete" in out and "FPS unknown" in out


def test_failed_clips_are_named_with_their_error(capsys, runs, tmp_path):
    code, out, _ = run_report(capsys, runs["cheap"])
    assert "partly failed" in out and "clip clip1 failed: OSError: cannot read clip1.png" in out
    failed = [f"clip{c}" for c in range(7)]
    document = as_json(capsys, fake_run(tmp_path / "broken", num_clips=7, failed=failed))
    assert document["runs"][0]["clips_failed"] == 7 and document["runs"][0]["mean_iou"] is None
    assert len(document["notes"]) == 6 and "and 2 more failed clips" in document["notes"][-1]


@pytest.mark.parametrize("make", ["missing", "empty", "baseline file"])
def test_a_folder_that_is_not_a_run_is_refused(capsys, runs, tmp_path, make):
    target = tmp_path / "not_a_run"
    if make == "empty":
        target.mkdir()
    elif make == "baseline file":
        target.write_text("hello")
    argv = (runs["dense"], "--baseline", target) if make == "baseline file" else (runs["dense"], target)
    code, out, err = run_report(capsys, *argv)
    assert code == 2 and out == ""
    assert str(target) in err and "not a run folder" in err and "Traceback" not in err


def test_files_among_the_runs_are_skipped_with_a_warning(capsys, runs, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, out, err = run_report(capsys, runs["dense"], tmp_path / "notes.txt", runs["half"])
    assert code == 0 and err == f"warning: skipping {tmp_path / 'notes.txt'}: a file, not a run folder\n"
    assert [line.split()[0] for line in out.splitlines()[3:5]] == ["dense", "half"]
    code, out, err = run_report(capsys, tmp_path / "notes.txt")
    assert code == 2 and out == "" and err.splitlines()[-1] == "error: no run folder among the arguments"


def test_readme_comparison_runs_twice(capsys, runs, tmp_path, monkeypatch):
    """The README's ``jobs.report runs/* --plot runs/compare.png``: the second time, runs/* matches the plot."""
    pytest.importorskip("matplotlib")
    for name in ("dense", "half"):
        shutil.copytree(runs[name], tmp_path / "runs" / name)
    monkeypatch.chdir(tmp_path)
    for attempt in range(2):
        code, out, err = run_report(capsys, *sorted(glob.glob("runs/*")), "--plot", "runs/compare.png")
        assert code == 0, err
        assert err == ("warning: skipping runs/compare.png: a file, not a run folder\n" if attempt else "")
        assert Path("runs/compare.png").read_bytes().startswith(PNG_SIGNATURE)
    table = run_report(capsys, *sorted(glob.glob("runs/*")), "--format", "csv")[1]
    Path("runs/report.csv").write_text(table)  # a table saved beside the runs is skipped likewise
    code, out, err = run_report(capsys, *sorted(glob.glob("runs/*")), "--format", "csv")
    assert (code, out) == (0, table) and "skipping runs/report.csv" in err


def test_runs_of_different_clips_are_said_to_differ(capsys, runs, tmp_path):
    four, two = fake_run(tmp_path / "four", num_clips=4), fake_run(tmp_path / "two", num_clips=2)
    notes = as_json(capsys, four, two)["notes"]
    assert notes == ["warning: runs four (4 clips) and two (2 clips) evaluated different clips and share 2 of 4 "
                     "(not in every run: clip2, clip3): their figures cover different clips; --common-clips "
                     "compares the shared clips only"]
    code, out, err = run_report(capsys, four, two, "--format", "csv")
    assert code == 0 and err == notes[0] + "\n"  # csv: notes on stderr
    assert as_json(capsys, runs["dense"], runs["cheap"])["notes"] == [FAILED_NOTE]  # a failed clip is recorded
    other = fake_run(tmp_path / "other", num_clips=1)
    other_ids = tables.build_sections([four, two, other])[1][0]
    assert "four (4 clips), two (2 clips) and other (1 clip)" in other_ids and "share 1 of 4" in other_ids


def test_common_clips_recompute_the_figures_from_the_shared_clips(capsys, tmp_path):
    # The first clips of a fake run depend on its seed only, so "two" holds the first two clips of "four".
    four = fake_run(tmp_path / "four", num_clips=4, audit=0.9, fps=30.0)
    two = fake_run(tmp_path / "two", num_clips=2, audit=0.9, fps=30.0)
    live = fake_run(tmp_path / "live", num_clips=3, finished=False)
    document = as_json(capsys, four, two, live, "--common-clips", "--per-class", "--clips", "exec")
    restricted, alone, partial = document["runs"]
    assert restricted["fps"] is None and alone["fps"] == 30.0  # "two" holds just the shared clips: left as is
    for key in ("clips_ok", "frames", "mean_iou", "gmacs_per_frame", "exec_fraction", "fps_per_actor",
                "dense_agreement", "dense_kl"):
        assert restricted[key] == pytest.approx(alone[key]), key
    assert partial["clips_ok"] == 2 and partial["mean_iou"] == pytest.approx(alone["mean_iou"])
    assert document["per_class"][-1]["four"] == pytest.approx(alone["mean_iou"])
    assert {r["clip_id"] for r in document["clips"]} == {"clip0", "clip1"}
    assert document["notes"][0].endswith("figures recomputed from the 2 shared clips only (--common-clips); FPS "
                                         "unknown for four and live (measured over all of a run's clips)")
    assert as_json(capsys, four, "--common-clips")["runs"][0]["fps"] == 30.0  # one run: nothing to restrict


def test_common_clips_of_runs_that_share_none(capsys, tmp_path):
    first = fake_run(tmp_path / "first", num_clips=1)
    failed = fake_run(tmp_path / "failed", num_clips=2, failed=("clip0",))
    assert run_report(capsys, first, failed, "--common-clips")[0] == 0  # clip0, failed in one, is recorded by both
    other = tmp_path / "other"
    RunWriter(other, "other", {}).append([ClipResult("clip9", "eval", status="failed", error="OSError: x")])
    code, out, err = run_report(capsys, first, other, "--common-clips")
    assert code == 2 and out == ""
    assert err == "error: runs first and other share no evaluation clip: --common-clips leaves nothing to compare\n"


def test_real_runs_of_different_clip_counts(capsys, real_run, tmp_path):
    one = tmp_path / "one"
    evaluate.main(["--executor", "inline", "--res", "64", "--clip-length", "2", "--num-clips-eval", "1",
                   "--workers", "0", "--report-dir", str(one)])
    capsys.readouterr()  # the job's own output
    document = as_json(capsys, real_run, one)
    assert "runs static (2 clips) and one (1 clip) evaluated different clips and share 1 of 2" in document["notes"][0]
    shared = as_json(capsys, real_run, one, "--common-clips")["runs"]
    assert shared[0]["frames"] == shared[1]["frames"] == 2 and shared[0]["fps"] is None
    for key in ("mean_iou", "gmacs_per_frame", "exec_fraction"):
        assert shared[0][key] == pytest.approx(shared[1][key]), key


def test_a_damaged_part_is_skipped_with_a_warning(capsys, caplog, tmp_path):
    (tmp_path / "broken" / "clips").mkdir(parents=True)
    (tmp_path / "broken" / "clips" / "part-0.parquet").write_bytes(b"not parquet")
    with caplog.at_level("WARNING", logger="blockcopy"):
        code, out, _ = run_report(capsys, tmp_path / "broken")
    assert code == 0 and "incomplete" in out
    assert any("part-0.parquet" in record.getMessage() for record in caplog.records)


def test_plots_are_written(capsys, runs, tmp_path):
    pytest.importorskip("matplotlib")
    code, _, err = run_report(capsys, *runs.values(), "--plot", tmp_path / "runs.png",
                              "--plot-clips", tmp_path / "clips.png")
    assert code == 0, err
    for name in ("runs.png", "clips.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_missing_matplotlib_is_said_clearly(capsys, runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, _, err = run_report(capsys, runs["dense"], "--plot", tmp_path / "p.png")
    assert code == 2 and "matplotlib" in err and "pip install" in err
    assert not (tmp_path / "p.png").exists()


def test_pareto_front():
    points = [(10.0, 70.0), (5.0, 65.0), (6.0, 60.0), (5.0, 64.0), (12.0, 70.0), (3.0, math.nan), (20.0, 75.0)]
    assert pareto_front(points) == [1, 0, 6]
    assert pareto_front([]) == []


def test_docs_recipes_run(capsys, runs, tmp_path, monkeypatch):
    for reader in ("pandas", "polars", "duckdb"):
        pytest.importorskip(reader)
    for name in ("dense", "half"):
        shutil.copytree(runs[name], tmp_path / "runs" / name)
    monkeypatch.chdir(tmp_path)
    recipes = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(recipes) == 4
    for recipe in recipes:
        exec(recipe.replace("runs/RUN/", "runs/dense/"), {})
    out = capsys.readouterr().out
    matrix, _, _ = recomputed(runs["dense"])
    assert str(matrix.mean_iou()) in out  # the pandas recipe's mIoU, recomputed from the clips
    assert "half" in out and "rl_semseg" in out
