import json

import pyarrow.parquet as pq
import pytest

from blockcopy_core.reports import read_summary, write_summary


def test_summary_round_trip_with_config_in_metadata(tmp_path):
    row = {"run_id": "r1", "mean_iou": 75.6, "num_frames": 40}
    config = {"block_policy": "static", "seed": 3}
    path = write_summary(tmp_path / "run", row, config)
    assert read_summary(tmp_path / "run") == {**row, "config": config}
    metadata = pq.read_schema(path).metadata
    assert json.loads(metadata[b"blockcopy.config"]) == config


def test_reading_a_folder_without_summary_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        read_summary(tmp_path)


def test_frames_of_an_uncommitted_batch_are_ignored(tmp_path):
    from blockcopy_core.reports import ReportWriter, read_table
    from blockcopy_core.runner import ClipResult, FrameResult

    writer = ReportWriter(tmp_path, "r1", {})
    result = ClipResult("c1", "eval", num_frames=1, frames=[FrameResult(0, "f0", 1.0, 0.5, 10.0)])
    writer.append([result])
    assert read_table(tmp_path, "frames").num_rows == 1
    # a crash after the frames part and before its clips part
    clips_part = next((tmp_path / "clips").glob("*.parquet"))
    clips_part.unlink()
    assert read_table(tmp_path, "frames").num_rows == 0
    assert read_table(tmp_path, "clips").num_rows == 0
