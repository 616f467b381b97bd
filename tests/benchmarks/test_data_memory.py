"""benchmarks/data_memory.py --smoke: two tiny image folders, the real trainer on each as a
child process, its peak RSS; the JSON it writes (no timing or memory thresholds here)."""

import json
import os

from benchmarks import data_memory


def test_smoke_measures_the_trainer_on_both_folders(tmp_path):
    out = tmp_path / "data_memory.json"
    cache = tmp_path / "cache"
    result = data_memory.main(["--smoke", "--cache_dir", str(cache), "--output", str(out)])
    written = json.loads(out.read_text())
    assert written["benchmark"] == "data_memory"
    assert written["settings"]["sizes"] == [200, 2000] and written["settings"]["smoke"]
    assert {"machine", "timestamp", "warmup_run", "runs", "peak_rss_difference_bytes",
            "within_floor"} <= set(written)
    assert [r["num_images"] for r in written["runs"]] == [200, 2000]
    for run in [written["warmup_run"], *written["runs"]]:
        assert run["peak_rss_bytes"] > 0 and run["wall_s"] > 0 and run["cpu_s"] > 0
    for run in written["runs"]:
        assert len(run["repeats"]) == written["settings"]["repeats"] == 1
        assert run["repeats"][0]["peak_rss_bytes"] == run["peak_rss_bytes"]
        assert run["bad_records"] == 0
        assert run["records_read"] >= 3 * 16  # 3 steps of batch 16
        assert 0 < run["num_train_examples"] < run["num_images"]  # 10% held out
        assert run["listing"]["num_files"] == run["num_images"]
        assert run["listing"]["traced_held_bytes"] > 0
        assert "--config=experiments/configs/dcgan_folder64.py" in run["command"]
        assert os.path.isdir(run["folder"])
    assert written["peak_rss_difference_bytes"] == (
        written["runs"][1]["peak_rss_bytes"] - written["runs"][0]["peak_rss_bytes"])
    assert result["runs"] == written["runs"]

    # A second call reuses the folders (a marker file records each one as complete).
    marker = os.path.join(written["runs"][0]["folder"], data_memory.MARKER)
    before = os.path.getmtime(marker)
    path, record = data_memory.image_folder(str(cache), 200, size=16)
    assert path == written["runs"][0]["folder"] and record["generated_s"] is None
    assert os.path.getmtime(marker) == before
