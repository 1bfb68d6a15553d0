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
