"""benchmarks/input_pipeline.py --smoke: TrainBatches.iterate over a generated JPEG folder and
a generated ArrayRecord dataset, read by threads and by a worker process; the JSON it writes
(no timing thresholds here)."""

import json

import pytest

from benchmarks import input_pipeline


def test_smoke_reads_folder_and_array_record_with_threads_and_workers(tmp_path):
    out = tmp_path / "input_pipeline.json"
    result = input_pipeline.main(["--smoke", "--cache_dir", str(tmp_path / "cache"),
                                  "--output", str(out)])
    written = json.loads(out.read_text())
    assert written["benchmark"] == "input_pipeline"
    assert {"machine", "timestamp", "settings", "results", "cores_needed"} <= set(written)
    rows = written["results"]
    assert {(r["source"], r["workers"], r["threads"]) for r in rows} == {
        ("folder", 0, 2), ("folder", 1, 1), ("array_record", 0, 2), ("array_record", 1, 1)}
    for r in rows:
        assert r["batch_shape"] == [32, 64, 64, 3] and r["batch_dtype"] == "float32"
        assert r["images"] == 4 * 32 and r["timed_batches"] == 4
        assert r["images_per_s"] > 0 and r["wall_s"] > 0 and r["first_batch_s"] > 0
        assert r["cpu_s"] >= 0 and r["cores_busy"] >= 0
        assert r["num_train_examples"] > 0 and r["image_shape"] == [64, 64, 3]
    for need in written["cores_needed"]:
        assert need["cores_needed"] > 0 and need["gpu_images_per_s"] > 0
    assert result["results"] == rows


@pytest.mark.parametrize("text, expected", [("0:2", (0, 2)), ("2:1", (2, 1))])
def test_settings_are_workers_colon_threads(text, expected):
    assert input_pipeline.parse_setting(text) == expected


@pytest.mark.parametrize("text", ["2", "a:b", "0:0", "-1:1"])
def test_bad_settings_are_refused(text):
    with pytest.raises(Exception, match="WORKERS:THREADS|workers must be"):
        input_pipeline.parse_setting(text)
