import json

import pyarrow.parquet as pq
import pytest

from blockcopy_core.reporting import (
    SUMMARY_SCHEMA,
    ClipResult,
    FrameResult,
    RunWriter,
    read_summary,
    read_table,
    summary_row,
)
from blockcopy_core.reporting.reader import read_config
from blockcopy_core.reporting.writer import write_summary


def test_summary_round_trip_with_config_in_metadata(tmp_path):
    config = {"run_id": "r1", "block_policy": "static", "block_size": 64, "seed": 3}
    path = write_summary(tmp_path / "run", summary_row(config, {"mean_iou": 75.6, "num_frames": 40}, fps=2.5))
    summary = read_summary(tmp_path / "run")
    assert list(summary) == SUMMARY_SCHEMA.names
    assert summary["config"] == config
    assert (summary["run_id"], summary["policy"], summary["block_size"]) == ("r1", "static", 64)
    assert (summary["mean_iou"], summary["num_frames"], summary["fps"]) == (75.6, 40, 2.5)
    assert summary["num_actors"] is None  # not given: null, never a column missing
    assert pq.read_schema(path).remove_metadata() == SUMMARY_SCHEMA
    metadata = pq.read_schema(path).metadata
    assert json.loads(metadata[b"blockcopy.config"]) == config


def test_summary_row_refuses_a_column_the_schema_lacks():
    with pytest.raises(KeyError, match="mIoU"):
        summary_row({}, {"mIoU": 75.6})


def test_reading_a_folder_without_summary_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        read_summary(tmp_path)


def test_frames_of_an_uncommitted_batch_are_ignored(tmp_path):
    writer = RunWriter(tmp_path, "r1", {})
    result = ClipResult("c1", "eval", num_frames=1, frames=[FrameResult(0, "f0", 1.0, 0.5, 10.0)])
    writer.append([result])
    assert read_table(tmp_path, "frames").num_rows == 1
    # a crash after the frames part and before its clips part
    clips_part = next((tmp_path / "clips").glob("*.parquet"))
    clips_part.unlink()
    assert read_table(tmp_path, "frames").num_rows == 0
    assert read_table(tmp_path, "clips").num_rows == 0


def two_batches(folder):
    writer = RunWriter(folder, "r1", {})
    for clip in ("c1", "c2"):
        writer.append([ClipResult(clip, "eval", num_frames=1, frames=[FrameResult(0, "f0", 1.0, 0.5, 10.0)])])
    return sorted((folder / "clips").glob("*.parquet"))


def test_batches_are_written_without_leaving_temp_files(tmp_path):
    parts = two_batches(tmp_path)
    assert [p.name for p in sorted((tmp_path / "frames").iterdir())] == [p.name for p in parts]
    assert len(list((tmp_path / "clips").iterdir())) == 2


@pytest.mark.parametrize("table", ["clips", "frames"])
def test_a_damaged_batch_is_skipped_with_a_warning(tmp_path, caplog, table):
    damaged = tmp_path / table / two_batches(tmp_path)[0].name
    damaged.write_bytes(damaged.read_bytes()[:-20])  # truncated: its Parquet footer is gone
    (tmp_path / "clips" / ".part-x.parquet.1234abcd.tmp").write_bytes(b"PAR1")  # an unfinished write
    for name in ("clips", "frames"):
        assert read_table(tmp_path, name).num_rows == 1
    assert f"skipping the damaged batch {damaged.name}: {table}/{damaged.name} is unreadable" in caplog.text


def test_the_config_is_read_from_a_whole_batch(tmp_path):
    assert read_config(tmp_path) == {}
    writer = RunWriter(tmp_path, "r1", {"seed": 3})
    for clip in ("c1", "c2"):
        writer.append([ClipResult(clip, "eval")])
    first = sorted((tmp_path / "clips").glob("*.parquet"))[0]
    first.write_bytes(b"PAR1 truncated")
    assert read_config(tmp_path) == {"seed": 3}
